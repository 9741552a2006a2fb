from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from store.uow import UnitOfWork

MakeRun = Callable[..., Awaitable[str]]
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


async def test_a_user_acknowledges_a_version_once(uow: UnitOfWork, make_run: MakeRun) -> None:
    run_id = await make_run()
    async with uow.transaction(run_id=run_id) as tx:
        assert await tx.acks.add(run_id=run_id, version=3, user="U0ENG1", at=T0)
        assert not await tx.acks.add(run_id=run_id, version=3, user="U0ENG1", at=T0 + timedelta(minutes=1))
        assert await tx.acks.add(run_id=run_id, version=4, user="U0ENG1", at=T0 + timedelta(minutes=2))
        assert await tx.acks.add(run_id=run_id, version=3, user="U0SEC1", at=T0 + timedelta(minutes=3))
    async with uow.transaction() as tx:
        first = await tx.acks.get(run_id, 3, "U0ENG1")
        assert first is not None and first.at == T0
        assert await tx.acks.get(run_id, 3, "U0NOBODY") is None
        assert [a.user for a in await tx.acks.for_version(run_id, 3)] == ["U0ENG1", "U0SEC1"]
        assert [(a.version, a.user) for a in await tx.acks.for_run(run_id)] == [
            (3, "U0ENG1"),
            (3, "U0SEC1"),
            (4, "U0ENG1"),
        ]
