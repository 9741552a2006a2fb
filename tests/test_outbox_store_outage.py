"""The store goes away in the middle of a 300-DM fan-out: nothing lost, duplicates only in flight.

The fan-out is real outbox rows (SQLite and PostgreSQL) sent by the real dispatcher through
`StoreOutbox` to the Slack stand-in. On cue, after the 100th delivery it records, the store fails
every call (as a PostgreSQL stop does). The dispatcher must stop the batch at that first error and
post nothing it cannot record. Then the store is back, the replica restarts under the same
identity, takes its claimed rows back at once (no lease to wait out) and sends the rest.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.dispatcher import IDEMPOTENCY_EVENT, Dispatcher, OutboxRow, RetryPolicy, make_client
from bot.outbox_port import StoreOutbox
from packets.messages import MessageKind
from store.outbox import OutboxState
from store.uow import UnitOfWork
from tests.slack_standin import SlackStandin

PEOPLE = 300
OUTAGE_AFTER = 100
CONCURRENCY = 8
FAST = RetryPolicy(attempts_per_round=3, first_delay=0.01, max_delay=0.05)


class StoreDown(Exception):
    """What the driver raises while the database is away."""


class FailingStore:
    """`StoreOutbox` that fails every call once `down` (after `fail_after` recorded deliveries)."""

    def __init__(self, inner: StoreOutbox, *, fail_after: int) -> None:
        self.inner = inner
        self.fail_after = fail_after
        self.recorded = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreDown("connection refused")

    async def claim(self, *, now: datetime, limit: int) -> Sequence[OutboxRow]:
        self._check()
        return await self.inner.claim(now=now, limit=limit)

    async def keep(self, row_ids: Sequence[int], /, *, now: datetime) -> set[int]:
        self._check()
        return await self.inner.keep(row_ids, now=now)

    async def mark_sent(self, row_id: int, /, *, ts: str | None, channel: str | None, at: datetime) -> object:
        if self.recorded >= self.fail_after:
            self.down = True
        self._check()
        self.recorded += 1
        return await self.inner.mark_sent(row_id, ts=ts, channel=channel, at=at)

    async def mark_retry(self, row_id: int, /, *, next_attempt_at: datetime, error: str) -> object:
        self._check()
        return await self.inner.mark_retry(row_id, next_attempt_at=next_attempt_at, error=error)

    async def mark_failed(self, row_id: int, /, *, error: str) -> object:
        self._check()
        return await self.inner.mark_failed(row_id, error=error)


def _dispatcher(slack: SlackStandin, outbox: Any) -> Dispatcher:
    client = make_client(token=slack.token, base_url=slack.base_url, timeout=5)
    return Dispatcher(
        client=client, outbox=outbox, concurrency=CONCURRENCY, policy=FAST, rng=random.Random(3)
    )


async def test_a_store_outage_during_a_fan_out_loses_nothing_and_repeats_only_what_was_in_flight(
    uow: UnitOfWork,
) -> None:
    now = datetime.now(UTC)
    async with uow.transaction() as tx:
        for n in range(PEOPLE):
            await tx.outbox.enqueue(
                kind=MessageKind.RUN_STATE.value,
                recipient=f"U{n:04d}",
                payload={"run": "r1", "state": "running", "reason": f"message {n}"},
                at=now,
            )

    async with SlackStandin() as slack:
        failing = FailingStore(StoreOutbox(uow, sender="replica-a"), fail_after=OUTAGE_AFTER)
        with pytest.raises(StoreDown):
            await _dispatcher(slack, failing).drain()
        posted_during = len(slack.calls("chat.postMessage"))
        unrecorded = posted_during - failing.recorded

        # The database is back; the replica restarts under the same identity.
        again = StoreOutbox(uow, sender="replica-a")
        taken = await again.take_back(now=datetime.now(UTC))
        report = await _dispatcher(slack, again).drain()

        posts = slack.calls("chat.postMessage")
        per_person = Counter(call.body["channel"] for call in posts)
        keys = {call.body["metadata"]["event_payload"]["outbox_id"] for call in posts}
        kinds = {call.body["metadata"]["event_type"] for call in posts}

    async with uow.transaction(read_only=True) as tx:
        counts = await tx.outbox.counts()
    duplicates = sum(n - 1 for n in per_person.values())
    assert set(per_person) == {f"U{n:04d}" for n in range(PEOPLE)}, "someone never got their DM"
    assert counts[OutboxState.SENT] == PEOPLE
    assert taken > 0, "the restarted replica had nothing of its own to take back"
    assert report.sent == PEOPLE - failing.recorded
    # Only rows posted but not recorded when the store went away go twice, each at most once more,
    # and no more of them than the requests the dispatcher has open at once.
    assert duplicates <= unrecorded <= CONCURRENCY
    assert max(per_person.values()) <= 2
    assert kinds == {IDEMPOTENCY_EVENT} and len(keys) == PEOPLE
    print(f"outage after {failing.recorded} recorded: posted {posted_during}, in flight {unrecorded}")
    print(f"took back {taken}, duplicates {duplicates}, lost 0")
