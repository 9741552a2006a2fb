from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from store.uow import UnitOfWork

MakeRun = Callable[..., Awaitable[str]]
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


async def open_hold(
    uow: UnitOfWork,
    run_id: str,
    hold_id: str = "hold-widen",
    *,
    version: int | None = 2,
    at: datetime = T0,
    mode: str = "any",
) -> bool:
    async with uow.transaction(run_id=run_id) as tx:
        return await tx.holds.open(
            run_id=run_id,
            hold_id=hold_id,
            checkpoint="widen",
            source="plan",
            reason="widen beyond cohort A",
            release_by=("release-authority", "payments-risk"),
            at=at,
            mode=mode,
            packet_version=version,
            opened_by="U0REL1",
        )


async def test_an_opened_hold_reads_back_open(uow: UnitOfWork, make_run: MakeRun) -> None:
    run_id = await make_run()
    assert await open_hold(uow, run_id)
    async with uow.transaction() as tx:
        hold = await tx.holds.get(run_id, "hold-widen")
    assert hold is not None
    assert (hold.state, hold.checkpoint, hold.source, hold.mode, hold.packet_version) == (
        "open",
        "widen",
        "plan",
        "any",
        2,
    )
    assert hold.release_by == ("release-authority", "payments-risk")
    assert (hold.opened_at, hold.opened_by, hold.released_by, hold.released_at) == (T0, "U0REL1", None, None)


async def test_opening_a_hold_id_twice_is_refused(uow: UnitOfWork, make_run: MakeRun) -> None:
    run_id = await make_run()
    assert await open_hold(uow, run_id)
    assert not await open_hold(uow, run_id)


async def test_a_release_records_who_released_as_which_role_and_when(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    await open_hold(uow, run_id)
    at = T0 + timedelta(minutes=4)
    async with uow.transaction(run_id=run_id) as tx:
        assert await tx.holds.release_cas(
            run_id=run_id,
            hold_id="hold-widen",
            released_by="U0REL2",
            released_as="release-authority",
            at=at,
            note="metrics clean",
        )
        hold = await tx.holds.get(run_id, "hold-widen")
    assert hold is not None
    assert (hold.state, hold.released_by, hold.released_as, hold.released_at, hold.release_note) == (
        "released",
        "U0REL2",
        "release-authority",
        at,
        "metrics clean",
    )


async def test_fifty_simultaneous_releases_of_one_hold_have_exactly_one_winner(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    await open_hold(uow, run_id)

    async def click(n: int) -> bool:
        async with uow.transaction(run_id=run_id) as tx:
            return await tx.holds.release_cas(
                run_id=run_id,
                hold_id="hold-widen",
                released_by=f"U{n:02d}",
                released_as="release-authority",
                at=T0 + timedelta(seconds=n),
            )

    results = await asyncio.gather(*(click(n) for n in range(50)))
    assert results.count(True) == 1
    assert results.count(False) == 49
    winner = results.index(True)
    async with uow.transaction() as tx:
        hold = await tx.holds.get(run_id, "hold-widen")
    assert hold is not None
    assert (hold.state, hold.released_by, hold.released_at) == (
        "released",
        f"U{winner:02d}",
        T0 + timedelta(seconds=winner),
    )


async def test_the_compare_and_set_alone_keeps_fifty_releases_to_one_winner(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    # No run lock here: only `UPDATE ... WHERE state = 'open'` stands between the clicks.
    run_id = await make_run()
    await open_hold(uow, run_id)

    async def click(n: int) -> bool:
        async with uow.transaction() as tx:
            await asyncio.sleep(0)
            return await tx.holds.release_cas(
                run_id=run_id,
                hold_id="hold-widen",
                released_by=f"U{n:02d}",
                released_as="release-authority",
                at=T0,
            )

    results = await asyncio.gather(*(click(n) for n in range(50)))
    assert results.count(True) == 1


async def test_a_withdrawn_hold_cannot_be_released(uow: UnitOfWork, make_run: MakeRun) -> None:
    run_id = await make_run()
    await open_hold(uow, run_id)
    async with uow.transaction(run_id=run_id) as tx:
        assert await tx.holds.withdraw_cas(
            run_id=run_id,
            hold_id="hold-widen",
            by="bot",
            at=T0,
            note="no longer in packet v3",
        )
        assert not await tx.holds.release_cas(
            run_id=run_id, hold_id="hold-widen", released_by="U1", released_as="r", at=T0
        )
        hold = await tx.holds.get(run_id, "hold-widen")
    assert hold is not None and (hold.state, hold.released_by, hold.release_note) == (
        "withdrawn",
        "bot",
        "no longer in packet v3",
    )
