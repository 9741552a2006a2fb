from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.outbox_port import StoreOutbox
from store.db import make_engine
from store.outbox import OutboxState
from store.uow import UnitOfWork

MakeRun = Callable[..., Awaitable[str]]
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
POSTGRES_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


async def enqueue(
    uow: UnitOfWork,
    recipient: str = "C0WARROOM",
    *,
    run_id: str | None = None,
    kind: str = "packet",
    payload: object = None,
    dedupe_key: str | None = None,
    at: datetime = T0,
    not_before: datetime | None = None,
) -> int | None:
    async with uow.transaction() as tx:
        return await tx.outbox.enqueue(
            kind=kind,
            recipient=recipient,
            payload=payload if payload is not None else {"text": recipient},
            at=at,
            run_id=run_id,
            dedupe_key=dedupe_key,
            not_before=not_before,
        )


async def claim(uow: UnitOfWork, *, now: datetime = T0, limit: int = 10) -> list[int]:
    async with uow.transaction() as tx:
        return [row.id for row in await tx.outbox.claim(now=now, limit=limit, lease=LEASE)]


async def test_a_queued_message_is_pending_with_its_plain_json_payload(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    payload = {"version": 3, "changes": [{"checkpoint": "widen", "moved": "+40m"}], "text": "ünïcode"}
    row_id = await enqueue(uow, "U0ENG1", run_id=run_id, kind="delta", payload=payload)
    assert row_id is not None
    async with uow.transaction() as tx:
        row = await tx.outbox.get(row_id)
    assert row is not None
    assert (row.run_id, row.kind, row.recipient, row.payload, row.state) == (
        run_id,
        "delta",
        "U0ENG1",
        payload,
        "pending",
    )
    assert (row.attempts, row.next_attempt_at, row.created_at, row.claimed_until) == (0, T0, T0, None)
    assert (row.slack_ts, row.slack_channel, row.last_error, row.sent_at) == (None, None, None, None)


async def test_a_dedupe_key_queues_a_message_once_per_run(uow: UnitOfWork, make_run: MakeRun) -> None:
    first_run, second_run = await make_run("r-1"), await make_run("r-2")
    queued = await enqueue(uow, run_id=first_run, dedupe_key="packet-v3")
    assert queued is not None
    assert await enqueue(uow, run_id=first_run, dedupe_key="packet-v3") is None
    assert await enqueue(uow, run_id=second_run, dedupe_key="packet-v3") is not None
    assert await enqueue(uow, dedupe_key="daily-digest") is not None
    assert await enqueue(uow, dedupe_key="daily-digest") is None
    assert await enqueue(uow, run_id=first_run) is not None
    assert await enqueue(uow, run_id=first_run) is not None
    async with uow.transaction() as tx:
        found = await tx.outbox.find(run_id=first_run, dedupe_key="packet-v3")
        assert found is not None and found.id == queued
        assert await tx.outbox.find(run_id=None, dedupe_key="daily-digest") is not None
        assert await tx.outbox.find(run_id=None, dedupe_key="packet-v3") is None
        assert len(await tx.outbox.for_run(first_run)) == 3


async def test_a_claim_hands_out_due_rows_in_id_order_under_a_lease(uow: UnitOfWork) -> None:
    ids = [await enqueue(uow, f"U{n}") for n in range(4)]
    later = await enqueue(uow, "U9", not_before=T0 + timedelta(seconds=10))
    async with uow.transaction() as tx:
        claimed = await tx.outbox.claim(now=T0, limit=3, lease=LEASE)
    assert [row.id for row in claimed] == ids[:3]
    assert all((r.state, r.attempts, r.claimed_until) == ("sending", 1, T0 + LEASE) for r in claimed)
    assert await claim(uow) == ids[3:]
    assert await claim(uow) == []
    assert await claim(uow, now=T0 + timedelta(seconds=10)) == [later]


async def test_a_claimed_row_comes_back_after_its_sender_crashed_and_the_lease_ran_out(
    uow: UnitOfWork,
) -> None:
    row_id = await enqueue(uow)
    assert await claim(uow) == [row_id]
    assert await claim(uow, now=T0 + LEASE - timedelta(seconds=1)) == []
    async with uow.transaction() as tx:
        again = await tx.outbox.claim(now=T0 + LEASE, limit=10, lease=LEASE)
    assert [(r.id, r.attempts, r.claimed_until) for r in again] == [(row_id, 2, T0 + 2 * LEASE)]


async def test_a_sent_row_keeps_its_slack_ts_and_is_never_handed_out_again(uow: UnitOfWork) -> None:
    row_id = await enqueue(uow)
    assert row_id is not None
    await claim(uow)
    async with uow.transaction() as tx:
        assert await tx.outbox.mark_sent(row_id, ts="1732500000.000100", channel="C0WARROOM", at=T0)
        assert not await tx.outbox.mark_sent(row_id, ts="other", channel="C0WARROOM", at=T0)
        row = await tx.outbox.get(row_id)
    assert row is not None
    assert (row.state, row.slack_ts, row.slack_channel, row.sent_at, row.claimed_until) == (
        "sent",
        "1732500000.000100",
        "C0WARROOM",
        T0,
        None,
    )
    assert await claim(uow, now=T0 + timedelta(days=1)) == []


async def test_a_retry_waits_until_its_next_attempt_time(uow: UnitOfWork) -> None:
    row_id = await enqueue(uow)
    assert row_id is not None
    await claim(uow)
    retry_at = T0 + timedelta(seconds=17)
    async with uow.transaction() as tx:
        assert await tx.outbox.mark_retry(row_id, next_attempt_at=retry_at, error="429 Retry-After: 17")
        row = await tx.outbox.get(row_id)
    assert row is not None
    assert (row.state, row.next_attempt_at, row.last_error, row.claimed_until) == (
        "pending",
        retry_at,
        "429 Retry-After: 17",
        None,
    )
    assert await claim(uow, now=retry_at - timedelta(seconds=1)) == []
    assert await claim(uow, now=retry_at) == [row_id]


async def test_a_permanently_failed_row_stops_and_lets_the_recipients_next_row_go(uow: UnitOfWork) -> None:
    first, second = await enqueue(uow, "U1"), await enqueue(uow, "U1")
    assert first is not None and second is not None
    assert await claim(uow, limit=1) == [first]
    async with uow.transaction() as tx:
        assert await tx.outbox.mark_failed(first, error="channel_not_found")
        failed = await tx.outbox.get(first)
    assert failed is not None and (failed.state, failed.last_error) == ("failed", "channel_not_found")
    assert await claim(uow, now=T0 + timedelta(days=1)) == [second]


async def test_a_recipients_rows_never_overtake_one_waiting_for_a_retry(uow: UnitOfWork) -> None:
    first = await enqueue(uow, "U1")
    other = await enqueue(uow, "U2")
    assert first is not None
    await claim(uow, limit=1)
    async with uow.transaction() as tx:
        await tx.outbox.mark_retry(first, next_attempt_at=T0 + timedelta(minutes=1), error="503")
    behind = await enqueue(uow, "U1")
    # U1's second message waits for its first; U2 is not held up.
    assert await claim(uow) == [other]
    async with uow.transaction() as tx:
        assert other is not None
        await tx.outbox.mark_sent(other, ts="1.1", channel="D2", at=T0)
    assert await claim(uow, now=T0 + timedelta(minutes=1)) == [first, behind]


async def test_a_recipients_rows_wait_while_an_earlier_one_is_being_sent(uow: UnitOfWork) -> None:
    first = await enqueue(uow, "U1")
    assert await claim(uow) == [first]
    second = await enqueue(uow, "U1")
    assert await claim(uow) == []
    async with uow.transaction() as tx:
        assert first is not None
        await tx.outbox.mark_sent(first, ts="1.1", channel="D1", at=T0)
    assert await claim(uow) == [second]


async def test_a_crash_between_commit_and_send_loses_nothing(database_url: str) -> None:
    before = UnitOfWork(make_engine(database_url))
    ids = [await enqueue(before, f"U{n}") for n in range(3)]
    await before.dispose()  # the process dies before the dispatcher sends anything

    after = UnitOfWork(make_engine(database_url))
    try:
        async with after.transaction() as tx:
            assert [row.id for row in await tx.outbox.pending()] == ids
        assert await claim(after) == ids
    finally:
        await after.dispose()


async def test_a_crash_while_sending_loses_nothing_once_the_lease_runs_out(database_url: str) -> None:
    before = UnitOfWork(make_engine(database_url))
    row_id = await enqueue(before)
    assert await claim(before) == [row_id]
    await before.dispose()  # died mid-send, the row still marked sending

    after = UnitOfWork(make_engine(database_url))
    try:
        assert await claim(after, now=T0 + LEASE) == [row_id]
    finally:
        await after.dispose()


async def test_two_claimers_at_once_get_disjoint_rows(uow: UnitOfWork) -> None:
    ids = [await enqueue(uow, f"U{n:02d}") for n in range(40)]
    first_claimed = asyncio.Event()
    second_done = asyncio.Event()

    async def first() -> list[int]:
        async with uow.transaction() as tx:
            rows = await tx.outbox.claim(now=T0, limit=25, lease=LEASE)
            first_claimed.set()
            if uow.dialect == "postgresql":
                # Keep the claim uncommitted while the other replica claims: SKIP LOCKED at work.
                await asyncio.wait_for(second_done.wait(), timeout=30)
            return [row.id for row in rows]

    async def second() -> list[int]:
        await first_claimed.wait()
        try:
            return await claim(uow, limit=25)
        finally:
            second_done.set()

    got_first, got_second = await asyncio.gather(first(), second())
    assert len(got_first) == 25 and len(got_second) == 15
    assert set(got_first).isdisjoint(got_second)
    assert sorted(got_first + got_second) == ids


@POSTGRES_ONLY
async def test_a_claimer_never_overtakes_a_row_another_replica_holds(uow: UnitOfWork) -> None:
    first = await enqueue(uow, "U1")
    behind = await enqueue(uow, "U1")
    other = await enqueue(uow, "U2")
    held = asyncio.Event()
    released = asyncio.Event()

    async def replica_a() -> list[int]:
        async with uow.transaction() as tx:
            rows = await tx.outbox.claim(now=T0, limit=1, lease=LEASE)
            held.set()
            await asyncio.wait_for(released.wait(), timeout=30)
            return [row.id for row in rows]

    async def replica_b() -> list[int]:
        await held.wait()
        try:
            return await claim(uow)
        finally:
            released.set()

    got_a, got_b = await asyncio.gather(replica_a(), replica_b())
    assert got_a == [first]
    assert got_b == [other]  # not `behind`: U1's first message is still out with replica A
    assert behind not in got_b


async def test_counts_and_the_next_due_time_describe_the_queue(uow: UnitOfWork) -> None:
    async with uow.transaction() as tx:
        assert await tx.outbox.next_due() is None
    sent, retried, failed = await enqueue(uow, "U1"), await enqueue(uow, "U2"), await enqueue(uow, "U3")
    await enqueue(uow, "U4", not_before=T0 + timedelta(minutes=10))
    assert sent is not None and retried is not None and failed is not None
    await claim(uow, limit=3)
    await enqueue(uow, "U5")
    async with uow.transaction() as tx:
        await tx.outbox.mark_sent(sent, ts="1.1", channel="C1", at=T0)
        await tx.outbox.mark_retry(retried, next_attempt_at=T0 + timedelta(minutes=3), error="500")
        await tx.outbox.mark_failed(failed, error="not_in_channel")
        counts = await tx.outbox.counts()
        due = await tx.outbox.next_due()
        pending = await tx.outbox.pending()
    assert counts == {
        OutboxState.PENDING: 3,
        OutboxState.SENDING: 0,
        OutboxState.SENT: 1,
        OutboxState.FAILED: 1,
    }
    assert due == T0
    assert [row.recipient for row in pending] == ["U2", "U4", "U5"]


async def test_the_next_due_time_includes_the_end_of_a_running_lease(uow: UnitOfWork) -> None:
    await enqueue(uow)
    await claim(uow)
    async with uow.transaction() as tx:
        assert await tx.outbox.next_due() == T0 + LEASE
        assert [row.state for row in await tx.outbox.pending()] == ["sending"]


async def test_a_sender_past_half_its_lease_renews_it_and_other_senders_stay_off_the_rows(
    uow: UnitOfWork,
) -> None:
    ids = [await enqueue(uow, "U0ENG1") for _ in range(3)]
    sender = StoreOutbox(uow, lease=LEASE)
    assert [row.id for row in await sender.claim(now=T0, limit=10)] == ids
    assert await sender.keep(ids, now=T0 + timedelta(seconds=20)) == set(ids)
    # The first lease would have ended at T0 + 30 s; the renewed one ends at T0 + 50 s.
    assert await claim(uow, now=T0 + LEASE + timedelta(seconds=1)) == []
    async with uow.transaction() as tx:
        row = await tx.outbox.get(ids[0])
    assert row is not None and row.claimed_until == T0 + timedelta(seconds=50)


async def test_a_sender_early_in_its_lease_keeps_its_rows_without_touching_them(uow: UnitOfWork) -> None:
    ids = [await enqueue(uow, "U0ENG1") for _ in range(2)]
    sender = StoreOutbox(uow, lease=LEASE)
    await sender.claim(now=T0, limit=10)
    assert await sender.keep(ids, now=T0 + timedelta(seconds=5)) == set(ids)
    async with uow.transaction() as tx:
        row = await tx.outbox.get(ids[1])
    assert row is not None and row.claimed_until == T0 + LEASE


async def test_a_sender_whose_rows_were_claimed_by_another_after_its_lease_passed_keeps_none(
    uow: UnitOfWork,
) -> None:
    ids = [await enqueue(uow, "U0ENG1") for _ in range(3)]
    slow, other = StoreOutbox(uow, lease=LEASE), StoreOutbox(uow, lease=LEASE)
    await slow.claim(now=T0, limit=10)
    later = T0 + LEASE + timedelta(seconds=1)
    assert [row.id for row in await other.claim(now=later, limit=10)] == ids
    assert await slow.keep(ids, now=later) == set()
    assert await other.keep(ids, now=later) == set(ids)
