from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from store.checkpoints import CheckpointRow
from store.uow import UnitOfWork

MakeRun = Callable[..., Awaitable[str]]
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


async def test_a_checkpoint_projection_is_inserted_then_overwritten(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    planned = CheckpointRow(
        run_id=run_id,
        checkpoint="canary-a",
        state="planned",
        updated_at=T0,
        owner_role="release-eng",
        owner_user="U0ENG1",
    )
    done = CheckpointRow(
        run_id=run_id,
        checkpoint="canary-a",
        state="done",
        updated_at=T0 + timedelta(minutes=30),
        owner_role="release-eng",
        owner_user="U0ENG2",
        started_at=T0,
        completed_at=T0 + timedelta(minutes=30),
        detail={"passes": 3},
    )
    async with uow.transaction(run_id=run_id) as tx:
        await tx.checkpoints.put(planned)
        assert await tx.checkpoints.get(run_id, "canary-a") == planned
        await tx.checkpoints.put(done)
    async with uow.transaction() as tx:
        assert await tx.checkpoints.get(run_id, "canary-a") == done
        assert await tx.checkpoints.get(run_id, "missing") is None


async def test_what_a_user_owns_is_listed_across_active_runs_only(uow: UnitOfWork, make_run: MakeRun) -> None:
    live, finished = await make_run("r-live"), await make_run("r-done", state="completed")
    async with uow.transaction() as tx:
        for run_id in (live, finished):
            for checkpoint, owner in (("b-widen", "U0REL1"), ("a-canary", "U0ENG1"), ("c-retire", "U0REL1")):
                await tx.checkpoints.put(
                    CheckpointRow(
                        run_id=run_id, checkpoint=checkpoint, state="planned", updated_at=T0, owner_user=owner
                    )
                )
        owned = await tx.checkpoints.owned_by("U0REL1")
        every = await tx.checkpoints.for_run(live)
    assert [(c.run_id, c.checkpoint) for c in owned] == [("r-live", "b-widen"), ("r-live", "c-retire")]
    assert [c.checkpoint for c in every] == ["a-canary", "b-widen", "c-retire"]
