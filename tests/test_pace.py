"""The pace toward Slack shared by replicas: the `slack_pace` table, its rules, and three
dispatchers on one database keeping together under the rate one of them learned."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.dispatcher import Dispatcher, PaceUnavailable, RetryPolicy, make_client
from bot.outbox_port import StoreOutbox
from bot.pace import LocalPace, StorePace, Turn
from packets.messages import MessageKind
from store.db import make_engine
from store.outbox import UNFINISHED, OutboxState
from store.pace import CATCH_UP, DECREASE, MIN_RATE, SAFETY, Learned, learned_rate
from store.uow import UnitOfWork
from tests.slack_standin import SlackStandin
from tests.test_dispatcher import FakeOutbox, line
from tests.test_render import SAMPLES

POST = "chat.postMessage"
FAST = RetryPolicy(attempts_per_round=3, first_delay=0.01, max_delay=0.05)


# -- the rules ---------------------------------------------------------------------------------


def test_the_first_report_of_a_burst_is_the_rate_a_little_under_what_slack_let_through() -> None:
    learned = learned_rate(Learned(), now=100.0, let_through=40, paced_at=None)

    assert (learned.rate, learned.learned_at) == (40 * SAFETY, 100.0)


def test_shares_of_one_burst_reported_by_several_replicas_add_up() -> None:
    learned = learned_rate(Learned(38.0, 100.0), now=100.4, let_through=20, paced_at=None)

    assert (learned.rate, learned.learned_at) == (38.0 + 20 * SAFETY, 100.0)


def test_a_share_reported_after_the_burst_never_raises_the_rate() -> None:
    was = Learned(38.0, 100.0)

    assert learned_rate(was, now=105.0, let_through=90, paced_at=None) == was


def test_a_429_with_too_few_calls_before_it_teaches_no_rate() -> None:
    assert learned_rate(Learned(), now=1.0, let_through=None, paced_at=None) == Learned()


def test_one_429_on_a_paced_call_alone_lowers_nothing_a_second_within_ten_seconds_lowers_by_a_tenth() -> None:
    once = learned_rate(Learned(50.0, 10.0), now=100.0, let_through=None, paced_at=50.0)
    assert once == Learned(50.0, 10.0, refused_at=100.0)
    # The same bunch of refusals, a moment later: still nothing.
    assert learned_rate(once, now=100.3, let_through=None, paced_at=50.0) == once

    twice = learned_rate(once, now=103.0, let_through=None, paced_at=50.0)
    assert twice == Learned(50.0 * DECREASE, 103.0, 103.0)
    # Long after: one refusal alone again.
    assert learned_rate(twice, now=200.0, let_through=None, paced_at=45.0).rate == twice.rate


def test_a_configured_cap_refused_again_and_again_teaches_a_lower_rate_but_never_none() -> None:
    learned = Learned()
    for second in range(1, 400):
        learned = learned_rate(learned, now=float(second), let_through=None, paced_at=learned.rate or 20.0)
        if second == 2:
            assert learned.rate == 18.0
    assert learned.rate == MIN_RATE


# -- the table ---------------------------------------------------------------------------------


async def test_reservations_by_two_replicas_are_one_over_the_rate_apart(database_url: str) -> None:
    replicas = [UnitOfWork(make_engine(database_url)) for _ in range(2)]
    try:
        learned = await StorePace(replicas[0]).learn(POST, retry_after=0, let_through=2, paced_at=None)
        slots = []
        for n in range(4):
            async with replicas[n % 2].transaction() as tx:
                slots.append(await tx.pace.reserve(POST, cap=None, within=60))
    finally:
        for replica in replicas:
            await replica.dispose()

    assert learned.rate == pytest.approx(2 * SAFETY)
    assert all(turn.reserved and turn.rate == learned.rate for turn in slots)
    # Slots, not clocks: each starts where the one before ends, whichever replica took it.
    assert [b.slot - a.slot for a, b in itertools.pairwise(slots)] == pytest.approx([1 / (2 * SAFETY)] * 3)


async def test_a_cap_lower_than_the_learned_rate_paces_the_caller_that_set_it(uow: UnitOfWork) -> None:
    async with uow.transaction() as tx:
        await tx.pace.learn(POST, retry_after=0, let_through=100, paced_at=None)
        first = await tx.pace.reserve(POST, cap=10, within=60)
        second = await tx.pace.reserve(POST, cap=10, within=60)

    assert second.slot - first.slot == pytest.approx(0.1)


async def test_a_retry_after_is_every_replicas_and_a_turn_beyond_the_wait_is_not_taken(
    database_url: str,
) -> None:
    one, other = (StorePace(UnitOfWork(make_engine(database_url))) for _ in range(2))
    try:
        await one.learn(POST, retry_after=120, let_through=None, paced_at=None)
        known = await other.known()
        refused = await other.reserve(POST, cap=50, within=10)
        again = await other.reserve(POST, cap=50, within=10)
    finally:
        await one._uow.dispose()
        await other._uow.dispose()

    assert known[POST].rate is None and 110 < known[POST].wait <= 120
    assert not refused.taken and 110 < refused.wait <= 120
    # The refused turn moved nothing: the next caller is not pushed further back.
    assert not again.taken and again.wait <= refused.wait


# -- three replicas ----------------------------------------------------------------------------

PEOPLE = 300
SLACK_RATE = 50  # chat.postMessage calls a second the stand-in lets through


async def _queue_dms(uow: UnitOfWork, people: int) -> None:
    at = datetime.now(UTC)
    async with uow.transaction() as tx:
        for n in range(people):
            await tx.outbox.enqueue(
                kind=MessageKind.DELTA_DM.value,
                recipient=f"U0P{n:04d}",
                payload={**SAMPLES[MessageKind.DELTA_DM], "version": 2},
                at=at,
            )


async def _unfinished(uow: UnitOfWork) -> int:
    async with uow.transaction(read_only=True) as tx:
        counts = await tx.outbox.counts()
    return sum(counts[state] for state in counts if state in UNFINISHED)


async def _drain_until_settled(dispatcher: Dispatcher, uow: UnitOfWork) -> None:
    # Rows left pending for a Retry-After come due a second later: drain again until none is left.
    while await _unfinished(uow):
        await dispatcher.drain()
        await asyncio.sleep(0.05)


async def test_three_replicas_on_one_database_keep_together_under_the_rate_one_of_them_learned(
    database_url: str,
) -> None:
    uows = [UnitOfWork(make_engine(database_url)) for _ in range(3)]
    await _queue_dms(uows[0], PEOPLE)
    try:
        async with SlackStandin() as slack:
            slack.rate_limit(POST, per_second=SLACK_RATE)
            replicas = [
                Dispatcher(
                    client=make_client(token=slack.token, base_url=slack.base_url),
                    outbox=StoreOutbox(uow, sender=f"replica-{i}"),
                    policy=FAST,
                    rng=random.Random(i),
                    batch_size=80,
                    pace=StorePace(uow),
                )
                for i, uow in enumerate(uows)
            ]
            # The first replica alone meets Slack's limit and learns the rate from its 429s.
            await asyncio.wait_for(replicas[0].drain(until_empty=False), timeout=60)
            learning = [c for c in slack.calls(POST) if c.status == 429]
            known = await StorePace(uows[1]).known()
            before = len(slack.calls(POST))

            # Then all three drain the rest together.
            await asyncio.wait_for(
                asyncio.gather(*(_drain_until_settled(d, u) for d, u in zip(replicas, uows, strict=True))),
                timeout=120,
            )
            together = slack.calls(POST)[before:]
            delivered = Counter(c.body["channel"] for c in slack.calls(POST) if c.ok)
        async with uows[0].transaction(read_only=True) as tx:
            counts = await tx.outbox.counts()
    finally:
        for uow in uows:
            await uow.dispose()

    assert learning, "the stand-in never refused the first replica: nothing was learned"
    learned = known[POST].rate
    assert learned is not None and 0 < learned <= SLACK_RATE
    refused = [c for c in together if c.status == 429]
    # Replicas that had not heard of the learned rate would go unpaced at first, each with a
    # burst of 429s (11 to 24 of them in this set-up with a pace each), and then each learn only
    # its own share; sharing the pace, they meet at most a few (arrivals the loop bunched).
    assert len(refused) <= 5, len(refused)
    assert sum(1 for c in together if c.ok) > 2 * SLACK_RATE  # the test did measure a fan-out
    assert counts[OutboxState.SENT] == PEOPLE
    assert len(delivered) == PEOPLE, "lost"
    assert max(delivered.values()) == 1, "duplicated"


async def test_a_retry_after_told_to_one_replica_holds_back_another_that_had_not_called_yet() -> None:
    shared = LocalPace()  # the table's rules, shared in memory by the two replicas
    first, second = FakeOutbox(), FakeOutbox()
    first.add(MessageKind.RUN_STATE, "U001", line(1))
    second.add(MessageKind.RUN_STATE, "U002", line(2))
    async with SlackStandin() as slack:
        slack.fail_next(POST, status=429, headers={"Retry-After": "2"})

        def replica(outbox: FakeOutbox) -> Dispatcher:
            client = make_client(token=slack.token, base_url=slack.base_url)
            return Dispatcher(client=client, outbox=outbox, policy=FAST, pace=shared)

        told = asyncio.ensure_future(replica(first).drain())
        while not slack.calls(POST):
            await asyncio.sleep(0.01)
        await replica(second).drain()
        await told

    refusal, *later = slack.calls(POST)
    assert refusal.status == 429 and [c.ok for c in later] == [True, True]
    # Slack never heard from the second replica before the Retry-After the first was told.
    (other,) = [c for c in later if c.body["channel"] == "U002"]
    assert other.at >= refusal.at + 2 - 0.01


# -- the store failing while pacing ------------------------------------------------------------


class StoreGoesAway(LocalPace):
    """A pace whose store fails (connection refused: an OSError, like a network error) once
    `gone()` says so."""

    def __init__(self, *, gone: Callable[[], bool]) -> None:
        super().__init__()
        self.gone = gone

    async def reserve(self, method: str, *, cap: float | None, within: float) -> Turn:
        if self.gone():
            raise ConnectionRefusedError("the database is away")
        return await super().reserve(method, cap=cap, within=within)


async def test_a_store_error_while_pacing_stops_the_batch_and_loses_or_doubles_nothing() -> None:
    outbox = FakeOutbox()
    for n in range(20):
        outbox.add(MessageKind.RUN_STATE, f"U{n:03d}", line(n))
    async with SlackStandin() as slack:

        def replica(pace: Any) -> Dispatcher:
            client = make_client(token=slack.token, base_url=slack.base_url)
            return Dispatcher(
                client=client, outbox=outbox, concurrency=1, policy=FAST, rates={POST: 1000}, pace=pace
            )

        with pytest.raises(PaceUnavailable):
            await replica(StoreGoesAway(gone=lambda: len(outbox.sent) >= 5)).drain()

        posted = {c.body["channel"] for c in slack.calls(POST)}
        assert len(slack.calls(POST)) == 5 and all(c.ok for c in slack.calls(POST))
        # Nothing was posted that was not recorded; the rest stay claimed until their lease passes
        # (no Slack failure counted against them, no row given up).
        assert posted == {outbox.row(i).recipient for i in outbox.sent} and outbox.failures == []
        assert set(outbox.states().values()) == {"sent", "sending"}

        for row in outbox.rows:  # the lease passed: another replica claims them
            if row.state == "sending":
                row.state = "pending"
        report = await replica(LocalPace()).drain()

        assert report.sent == 15 and set(outbox.states().values()) == {"sent"}
        assert sorted(Counter(c.body["channel"] for c in slack.calls(POST) if c.ok).values()) == [1] * 20


async def test_after_a_lull_a_caller_makes_up_at_most_catch_up_seconds_of_slots() -> None:
    clock = [0.0]
    pace = LocalPace(monotonic=lambda: clock[0])
    await pace.reserve("chat.postMessage", cap=100.0, within=5.0)
    clock[0] = 1.0  # every sender was busy for a second: its slots are gone, but for the last few

    waits = [(await pace.reserve("chat.postMessage", cap=100.0, within=5.0)).wait for _ in range(8)]

    made_up = [w for w in waits if w <= 0]
    assert len(made_up) == round(CATCH_UP * 100) + 1, waits
    assert min(waits) == pytest.approx(-CATCH_UP)
    assert all(b - a == pytest.approx(0.01) for a, b in itertools.pairwise(waits)), "then one every 10 ms"
