"""The traffic-shift queue: claimed with a lease, closed once, answered rows never sent again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from store.shifts import ShiftState
from store.uow import UnitOfWork

MakeRun = Callable[..., Awaitable[str]]
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


async def queue(uow: UnitOfWork, run_id: str, key: str, percent: float = 5.0) -> int:
    async with uow.transaction() as tx:
        return await tx.shifts.queue(
            run_id=run_id, idempotency_key=key, payload={"cohort": "merchant-a", "percent": percent}, at=T0
        )


async def claim(uow: UnitOfWork, *, now: datetime = T0) -> list[tuple[int, str]]:
    async with uow.transaction() as tx:
        return [(row.id, row.state) for row in await tx.shifts.claim(now=now, limit=10, lease=LEASE)]


async def test_a_claimed_shift_is_not_handed_out_again_while_its_lease_runs(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run = await make_run()
    first = await queue(uow, run, f"{run}/merchant-a/1")

    assert await claim(uow) == [(first, ShiftState.SENDING)]
    assert await claim(uow, now=T0 + LEASE - timedelta(seconds=1)) == []
    # A sender that died mid-call: the row goes again, under the same idempotency key.
    assert await claim(uow, now=T0 + LEASE) == [(first, ShiftState.SENDING)]
    async with uow.transaction(read_only=True) as tx:
        row = await tx.shifts.get(first)
    assert row is not None and row.attempts == 2 and row.idempotency_key == f"{run}/merchant-a/1"


async def test_a_finished_shift_is_closed_once_and_only_by_the_claim_that_sent_it(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run = await make_run()
    first = await queue(uow, run, "k1")
    await claim(uow)
    async with uow.transaction(read_only=True) as tx:
        held_until = (await tx.shifts.get(first)).claimed_until  # type: ignore[union-attr]

    async with uow.transaction() as tx:
        assert not await tx.shifts.finish(first, held_until=T0, ok=True, detail="", at=T0)
        assert await tx.shifts.finish(first, held_until=held_until, ok=True, detail="ok", at=T0)
        assert not await tx.shifts.finish(first, held_until=held_until, ok=True, detail="ok", at=T0)

    assert await claim(uow, now=T0 + 2 * LEASE) == []


async def test_an_answered_shift_is_handed_out_to_be_fed_and_never_sent_again(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run = await make_run()
    first = await queue(uow, run, "k1")
    await claim(uow)
    async with uow.transaction() as tx:
        held_until = (await tx.shifts.get(first)).claimed_until  # type: ignore[union-attr]
        assert await tx.shifts.answer(first, held_until=held_until, ok=False, detail="503", at=T0)

    assert await claim(uow) == [(first, ShiftState.ANSWERED)]
    async with uow.transaction() as tx:
        row = await tx.shifts.get(first)
        assert row is not None and (row.ok, row.detail, row.attempts) == (False, "503", 1)
        assert await tx.shifts.finish(first, held_until=None, ok=False, detail="503", at=T0)


async def test_a_runs_later_shift_waits_for_its_earlier_one(uow: UnitOfWork, make_run: MakeRun) -> None:
    run = await make_run()
    other = await make_run("r-other")
    first = await queue(uow, run, "k1")
    assert await claim(uow) == [(first, ShiftState.SENDING)]
    second = await queue(uow, run, "k2", percent=0.0)
    elsewhere = await queue(uow, other, "k3")

    # The run's earlier shift is still out: its later one must not overtake it; other runs go on.
    assert await claim(uow) == [(elsewhere, ShiftState.SENDING)]
    assert second not in [row for row, _ in await claim(uow)]
