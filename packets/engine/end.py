"""How a run stops for good: completed, rolled back, aborted or superseded."""

from __future__ import annotations

from packets.engine.draft import Draft
from packets.engine.effects import LedgerKind, StopGateChecks
from packets.engine.holds import withdraw_all
from packets.engine.progress import IN_FLIGHT, CheckpointState, RunState

# The ledger kind of each ending, and the state the room's run_state line names.
_ENDINGS: dict[RunState, tuple[LedgerKind, str]] = {
    RunState.COMPLETED: (LedgerKind.RUN_COMPLETED, "completed"),
    RunState.ROLLED_BACK: (LedgerKind.RUN_ROLLED_BACK, "rolled back"),
    RunState.ABORTED: (LedgerKind.RUN_ABORTED, "aborted"),
    RunState.SUPERSEDED: (LedgerKind.RUN_SUPERSEDED, "superseded"),
}


def wind_down(d: Draft, *, actor: str, why: str) -> None:
    """Checkpoints in flight failed, the rest never ran; holds withdrawn; gate checks stopped."""
    for checkpoint, progress in d.progress.checkpoints.items():
        if progress.state in IN_FLIGHT:
            d.update_checkpoint(checkpoint, state=CheckpointState.FAILED)
        elif progress.state is CheckpointState.PENDING:
            d.update_checkpoint(checkpoint, state=CheckpointState.SKIPPED)
    withdraw_all(d, actor=actor, why=why)
    if d.progress.started_at is not None:
        d.emit(StopGateChecks(checkpoint=None))


def finish(d: Draft, state: RunState, *, actor: str, why: str, superseded_by: str | None = None) -> None:
    ledger_kind, label = _ENDINGS[state]
    d.update(state=state, ended_at=d.at, end_reason=why)
    done = sum(1 for c in d.progress.checkpoints.values() if c.state is CheckpointState.DONE)
    link = {"superseded_by": superseded_by} if superseded_by is not None else {}
    d.ledger(
        ledger_kind,
        actor=actor,
        payload={"why": why, "checkpoints_done": done, "traffic": dict(d.progress.traffic), **link},
    )
    d.tell_state(
        label,
        roles=[*d.plan.authority.start_and_rollback, *d.plan.authority.signoff],
        data={"why": why, "checkpoints_done": done},
    )
