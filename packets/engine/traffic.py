"""Traffic inside the stage engine: commanding a cohort, the control plane's answers, and the
two rollbacks of the rollback matrix.

A command changes `RunProgress.traffic` at once (it is what the engine wants) and waits in the
cohort's history until `ActuationSucceeded` or `ActuationFailed` answers it. A refused checkpoint
shift puts the cohort back where it was and holds the checkpoint: it never counts as done. A
refused rollback keeps the cohort at the rollback target (the engine still wants it there) and
tells people, who retry with another rollback request.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from packets.engine.draft import Draft
from packets.engine.effects import LedgerKind, ShiftTraffic
from packets.engine.end import finish, wind_down
from packets.engine.events import ActuationFailed, ActuationSucceeded
from packets.engine.holds import HoldNeed, has_open_hold, open_hold
from packets.engine.progress import CheckpointState, RunState, TrafficChange
from packets.packet import HoldSource
from packets.plan import HYPERCARE_CHECKPOINT

ADVANCE = "advance"
ROLLBACK_COHORT = "rollback_cohort"
GLOBAL_ROLLBACK = "global_rollback"
# A cohort put back to the plan's final percent during hyper-care (`engine.restore`).
RESTORE = "restore"
# The causes that raise traffic: refused, the cohort goes back where it was.
_RISES = (ADVANCE, RESTORE)


def command(
    d: Draft,
    *,
    cohort: str,
    percent: float,
    checkpoint: str | None,
    cause: str,
    actor: str,
    why: dict[str, Any],
) -> TrafficChange:
    """Shift one cohort: the ShiftTraffic effect and the ledger entry saying who or what caused it."""
    previous = d.progress.traffic.get(cohort, 0.0)
    history = d.progress.traffic_history.get(cohort, ())
    change = TrafficChange(
        key=f"{d.progress.run_id}/{cohort}/{len(history) + 1}",
        checkpoint=checkpoint,
        percent=percent,
        previous_percent=previous,
        at=d.at,
        cause=cause,
    )
    d.update(
        traffic={**d.progress.traffic, cohort: percent},
        traffic_history={**d.progress.traffic_history, cohort: (*history, change)},
    )
    _emit_shift(d, change, cohort)
    d.ledger(
        LedgerKind.TRAFFIC_SHIFTED, actor=actor, payload={**_shift_payload(d, change, cohort), "cause": why}
    )
    return change


def _emit_shift(d: Draft, change: TrafficChange, cohort: str) -> None:
    d.emit(
        ShiftTraffic(
            checkpoint=change.checkpoint,
            cohort=cohort,
            percent=change.percent,
            previous_percent=change.previous_percent,
            packet_version=d.progress.packet_version,
            cause=change.cause,
            key=change.key,
        )
    )


def _shift_payload(d: Draft, change: TrafficChange, cohort: str) -> dict[str, Any]:
    return {
        "checkpoint": change.checkpoint,
        "cohort": cohort,
        "percent": change.percent,
        "previous_percent": change.previous_percent,
        "packet_version": d.progress.packet_version,
        "key": change.key,
        "shift_cause": change.cause,
    }


def retry(d: Draft, cohort: str, *, actor: str, why: dict[str, Any]) -> None:
    """Send a refused or unanswered rollback command again, under the same idempotency key."""
    history = d.progress.traffic_history[cohort]
    again = replace(history[-1], confirmed=None)
    d.update(traffic_history={**d.progress.traffic_history, cohort: (*history[:-1], again)})
    _emit_shift(d, again, cohort)
    d.ledger(
        LedgerKind.ROLLBACK_RETRIED, actor=actor, payload={**_shift_payload(d, again, cohort), "cause": why}
    )


def _answered(d: Draft, cohort: str, percent: float) -> TrafficChange | None:
    """The command an actuation report answers: the cohort's command in force, same percent."""
    history = d.progress.traffic_history.get(cohort, ())
    last = history[-1] if history else None
    if last is None or last.confirmed is True or abs(last.percent - percent) > 1e-9:
        return None
    if d.progress.traffic.get(cohort) != last.percent:
        return None
    return last


def _set_answer(d: Draft, cohort: str, confirmed: bool) -> TrafficChange:
    history = d.progress.traffic_history[cohort]
    answered = replace(history[-1], confirmed=confirmed)
    d.update(traffic_history={**d.progress.traffic_history, cohort: (*history[:-1], answered)})
    return answered


def _ignored(d: Draft, cohort: str, percent: float, answer: str) -> None:
    # A late or duplicate report (the engine has since commanded something else): on record only.
    d.ledger(
        LedgerKind.ACTUATION_REPORT_IGNORED,
        actor="engine",
        payload={
            "cohort": cohort,
            "percent": percent,
            "answer": answer,
            "in_force": d.progress.traffic.get(cohort),
        },
    )


def confirm(d: Draft, event: ActuationSucceeded) -> None:
    if _answered(d, event.cohort, event.percent) is None:
        _ignored(d, event.cohort, event.percent, "succeeded")
        return
    change = _set_answer(d, event.cohort, True)
    checkpoint = change.checkpoint
    if change.cause == ADVANCE and _soaking(d, checkpoint):
        d.update_checkpoint(str(checkpoint), shift_confirmed=True)
    d.ledger(LedgerKind.TRAFFIC_CONFIRMED, actor="engine", payload=_shift_payload(d, change, event.cohort))
    if d.progress.state is RunState.ROLLING_BACK and not d.progress.outstanding():
        finish(d, RunState.ROLLED_BACK, actor="engine", why="every cohort is back on the legacy path")


def refuse(d: Draft, event: ActuationFailed) -> None:
    if _answered(d, event.cohort, event.percent) is None:
        _ignored(d, event.cohort, event.percent, "failed")
        return
    change = _set_answer(d, event.cohort, False)
    checkpoint = change.checkpoint
    rolling_back = d.progress.state is RunState.ROLLING_BACK
    if change.cause in _RISES and not rolling_back:
        # The control plane left the cohort where it was; the checkpoint waits on a person.
        d.update(traffic={**d.progress.traffic, event.cohort: change.previous_percent})
    payload = {
        **_shift_payload(d, change, event.cohort),
        "detail": event.detail,
        "now_commanded": d.progress.traffic[event.cohort],
    }
    d.ledger(LedgerKind.ACTUATION_FAILED, actor="engine", payload=payload)
    d.tell_state(
        "traffic shift refused by the control plane",
        roles=d.plan.authority.start_and_rollback,
        data={
            "cohort": event.cohort,
            "percent": change.percent,
            "checkpoint": checkpoint,
            "detail": event.detail,
            "cause": change.cause,
        },
    )
    if rolling_back:
        # Still wanted at 0%: a person retries with another rollback request.
        return
    if change.cause == ADVANCE and _soaking(d, checkpoint):
        d.update_checkpoint(str(checkpoint), state=CheckpointState.HELD, shift_confirmed=False)
    reason = f"the traffic control plane refused {event.cohort} at {change.percent:g}%: {event.detail}"
    need = HoldNeed(reason, HoldSource.ACTUATION, tuple(d.plan.authority.start_and_rollback))
    # A refused restore holds hyper-care, where it was asked for.
    open_hold(
        d,
        need,
        checkpoint=HYPERCARE_CHECKPOINT if change.cause == RESTORE else checkpoint,
        opened_by="engine",
    )


def _soaking(d: Draft, checkpoint: str | None) -> bool:
    progress = d.progress.checkpoints.get(checkpoint) if checkpoint is not None else None
    return progress is not None and progress.state is CheckpointState.SOAKING


def rollback_cohort(d: Draft, *, actor: str, why: dict[str, Any], checkpoint: str | None = None) -> bool:
    """Put the in-flight checkpoint's cohort back to its percent before that checkpoint's shift.

    Only the cohort of the checkpoint in flight: rolling back an earlier, completed stage would
    reopen it behind the one in flight. During hyper-care, where nothing is in flight, the caller
    names the last traffic checkpoint: its cohort goes back, and the checkpoint stays done (there
    is nothing to run again). Returns whether anything was shifted; the caller holds.
    """
    checkpoint = checkpoint or d.traffic_flight()
    if checkpoint is None:
        return False
    traffic = d.spec(checkpoint).traffic
    progress = d.checkpoint(checkpoint)
    if traffic is None or progress.attempt == 0 or progress.previous_percent is None:
        return False
    if d.progress.traffic.get(traffic.cohort, 0.0) == progress.previous_percent:
        return False
    command(
        d,
        cohort=traffic.cohort,
        percent=progress.previous_percent,
        checkpoint=checkpoint,
        cause=ROLLBACK_COHORT,
        actor=actor,
        why=why,
    )
    if checkpoint in d.flights():
        d.update_checkpoint(checkpoint, state=CheckpointState.HELD, shift_confirmed=False)
    d.ledger(
        LedgerKind.ROLLBACK_COHORT,
        actor=actor,
        payload={
            "checkpoint": checkpoint,
            "cohort": traffic.cohort,
            "percent": progress.previous_percent,
            "cause": why,
        },
    )
    d.tell_state(
        "cohort rolled back",
        roles=[d.planned(checkpoint).owner_role, *d.plan.authority.start_and_rollback],
        data={"checkpoint": checkpoint, "cohort": traffic.cohort, "percent": progress.previous_percent},
    )
    return True


def failed_rollback(d: Draft, cohort: str) -> bool:
    """Whether the cohort's command in force is a rollback the control plane has not carried out."""
    waiting = d.progress.outstanding().get(cohort)
    return waiting is not None and waiting.cause not in _RISES


def hold_after_rollback(
    d: Draft, checkpoint: str | None, *, reason: str, source: HoldSource, actor: str
) -> None:
    if has_open_hold(d, checkpoint, HoldSource.GATE, HoldSource.MANUAL):
        return
    need = HoldNeed(reason, source, tuple(d.plan.authority.start_and_rollback))
    open_hold(d, need, checkpoint=checkpoint, opened_by=actor)


def global_rollback(
    d: Draft, *, actor: str, why: dict[str, Any], reason: str, checkpoint: str | None = None
) -> None:
    """Every cohort back to legacy (0%); the run ends rolled_back once the control plane confirms.

    `checkpoint` is where it happened when nothing is in flight (`hypercare` during hyper-care).
    """
    checkpoint = d.in_flight() or checkpoint
    d.ledger(LedgerKind.GLOBAL_ROLLBACK, actor=actor, payload={"checkpoint": checkpoint, "cause": why})
    for cohort in sorted(d.progress.traffic):
        if d.progress.traffic[cohort] > 0:
            command(
                d,
                cohort=cohort,
                percent=0.0,
                checkpoint=checkpoint,
                cause=GLOBAL_ROLLBACK,
                actor=actor,
                why=why,
            )
    wind_down(d, actor=actor, why=reason)
    d.update(state=RunState.ROLLING_BACK)
    d.tell_state(
        "rolling back",
        roles=[*d.plan.authority.start_and_rollback, *d.plan.authority.signoff],
        data={"checkpoint": checkpoint, "reason": reason, "by": actor},
    )
    if not d.progress.outstanding():
        finish(d, RunState.ROLLED_BACK, actor=actor, why=reason)
