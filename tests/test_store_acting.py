from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from store.uow import UnitOfWork

MakeRun = Callable[..., Awaitable[str]]
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


async def test_acting_user_changes_are_kept_in_the_order_made(uow: UnitOfWork, make_run: MakeRun) -> None:
    run_id = await make_run()
    async with uow.transaction(run_id=run_id) as tx:
        first = await tx.acting.record(
            run_id=run_id,
            role="release-eng",
            from_user="U0ENG1",
            to_user="U0ENG2",
            by_user="U0REL1",
            at=T0,
            reason="shift change",
        )
        await tx.acting.record(
            run_id=run_id,
            role="security",
            from_user="U0SEC1",
            to_user="U0SEC2",
            by_user="U0REL1",
            at=T0 + timedelta(minutes=1),
        )
        await tx.acting.record(
            run_id=run_id,
            role="release-eng",
            from_user="U0ENG2",
            to_user="U0ENG1",
            by_user="U0REL1",
            at=T0 + timedelta(minutes=2),
        )
    assert (first.role, first.from_user, first.to_user, first.by_user, first.reason, first.at) == (
        "release-eng",
        "U0ENG1",
        "U0ENG2",
        "U0REL1",
        "shift change",
        T0,
    )
    async with uow.transaction() as tx:
        every = await tx.acting.for_run(run_id)
        eng = await tx.acting.for_run(run_id, role="release-eng")
    assert [c.to_user for c in every] == ["U0ENG2", "U0SEC2", "U0ENG1"]
    assert [c.to_user for c in eng] == ["U0ENG2", "U0ENG1"]
