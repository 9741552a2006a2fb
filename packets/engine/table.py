"""The stage engine: one pure function from (progress, event) to (new progress, effects).

The transition table below is the whole of what may happen: a row names the run states it applies
in, the event, the states the run may be in afterwards, and what it does. An event with no row
for the run's state raises `IllegalTransition(event, state)`; an event from someone who may not
do it raises `packets.authority.Refused(reason)`; `IllegalTransition` is a `Refused` too, and
when either is raised nothing
changes (there is simply no new progress to save).

Run state is derived where it can be (see `engine.advance.settle`): a freeze beats an open hold,
which beats a pause. So a hold released while paused leaves the run paused, and an unfreeze goes
back to whatever still stops the run, without remembering a "resume target". With nothing stopping
it, the run is `running` during the stages and `hypercare` after them.

Recovery is deliberate (`engine.advance.settle`): time stopped (paused, held, frozen) does not count
as soak, so the soak in flight resumes where it stopped; after a pause or a freeze, the checkpoint in
flight completes, and the next traffic step goes out, only on `consecutive_passes` passes of each
gate gathered after the moment the run started again.

Check before moving (`engine.advance`): no traffic increase goes out without a fresh reading of
every gate of the checkpoint about to shift (bar a readiness gate) and of the watched gates, taken
for that shift (from the moment the engine first wanted it, asked again after any stop), no older
than the gate's interval, all passing. A failing one takes its action as the readings come in, and
the shift does not happen; the readings that vouched are the shift's cause in the ledger.

Hyper-care (`engine.hypercare`): when the last checkpoint completes and the plan declares
`hypercare`, the run is not completed but enters `hypercare`. Gate results for the pseudo-checkpoint
`hypercare` keep coming on the plan's cadence, and a failure takes its gate's action exactly as
during the stages; a tick after the last cadence step completes the run. Nothing is left to
advance, so no row lets traffic rise during hyper-care.

Redaction happens once on the way in and once on the way out. In: free text in events (reasons,
actuator details, gate reasons) here, and typed commands in `bot.intents.dispatch`. Out: the
ledger (`handlers.context.ledger`), Slack (`bot.render`, `bot.replies`), the log formatter of
`serve`, the evidence export and the rehearsal's print.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

from packets.authority import Acting, Refused, who_acts
from packets.engine import rows
from packets.engine.draft import Draft
from packets.engine.effects import (
    Effect,
)
from packets.engine.errors import IllegalTransition
from packets.engine.events import (
    Abort,
    ActuationFailed,
    ActuationSucceeded,
    CheckpointDone,
    Event,
    Freeze,
    GateResults,
    HoldOpened,
    HoldReleased,
    PacketAdopted,
    Pause,
    ReleaseWithdrawn,
    Restore,
    Resume,
    RollbackRequested,
    SignoffGiven,
    Start,
    Tick,
    Unfreeze,
)
from packets.engine.holds import refuse_if_closed
from packets.engine.progress import (
    CheckpointProgress,
    RunProgress,
    RunState,
)
from packets.packet import Packet, PacketState
from packets.plan import Plan
from packets.redact import redact

R = RunState
E = TypeVar("E", bound=Event)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Row(Generic[E]):
    states: frozenset[RunState]
    event: type[E]
    to: frozenset[RunState]
    does: str
    apply: Callable[[Draft, E], None]
    # The run may also stay in the state it was in.
    stays: bool = False

    def allows(self, before: RunState, after: RunState) -> bool:
        return after in self.to or (self.stays and after is before)


def _row(
    states: Iterable[RunState],
    event: type[E],
    to: Iterable[RunState],
    does: str,
    apply: Callable[[Draft, E], None],
    *,
    stays: bool = False,
) -> Row[E]:
    return Row(frozenset(states), event, frozenset(to), does, apply, stays)


_ALL = tuple(RunState)
_STOPPED = (R.PAUSED, R.HELD, R.FROZEN)
_LIVE = (R.RUNNING, R.PAUSED, R.HELD, R.FROZEN)
# Where advancing may leave the run: on, held by the next checkpoint's hold, or past the last one.
_ADVANCED = (R.RUNNING, R.HELD, R.HYPERCARE, R.COMPLETED)

# fmt: off
TABLE: tuple[Row[Any], ...] = (
    _row([R.AWAITING_SIGNOFF], SignoffGiven, [R.AWAITING_SIGNOFF, R.READY],
         "record a sign-off of the run's exact plan revision; ready once every signoff role signed",
         rows.signoff),
    _row([R.READY], Start, _ADVANCED,
         "start (start_and_rollback role); walk the timeline", rows.start),
    _row([R.RUNNING], Tick, _ADVANCED,
         "complete what soaked and passed; start every checkpoint whose dependencies are done, side by "
         "side (one cohort's shifts never overlap; a traffic increase only on fresh passing readings "
         "taken for it)", rows.tick),
    _row([r for r in _ALL if r not in (R.RUNNING, R.HYPERCARE)], Tick, [],
         "nothing: a run that is not running waits for people", rows.nothing, stays=True),
    _row([R.HYPERCARE], Tick, [R.HYPERCARE, R.HELD, R.COMPLETED],
         "complete the run once hyper-care ran its course, breaches included (stop gate checks); with "
         "traffic short of the plan's final percentages, hold it for the start_and_rollback roles instead; "
         "until then nothing", rows.hypercare_tick),
    _row([R.RUNNING], GateResults, [R.RUNNING, R.PAUSED, R.HELD, R.FROZEN, R.ROLLING_BACK, R.ROLLED_BACK,
                                    R.HYPERCARE, R.COMPLETED],
         "record evidence; a failure takes its gate's action (most severe wins); else advance",
         rows.gate_results),
    _row([R.PAUSED, R.HELD], GateResults, [R.PAUSED, R.HELD, R.FROZEN, R.ROLLING_BACK, R.ROLLED_BACK],
         "record evidence; a failure takes its gate's action; nothing advances", rows.gate_results),
    _row([R.HYPERCARE], GateResults, [R.HYPERCARE, R.PAUSED, R.HELD, R.FROZEN, R.ROLLING_BACK, R.ROLLED_BACK],
         "record hyper-care evidence; a failure takes its gate's action exactly as during the stages "
         "(rollback_cohort: the last traffic checkpoint's cohort) and extends hyper-care "
         "(extend_on_breach after the failure, else the cadence step in force starts again); "
         "nothing advances", rows.gate_results),
    _row([R.FROZEN], GateResults, [R.FROZEN],
         "record evidence; failures are recorded and told, no action: a freeze moves no traffic",
         rows.gate_results),
    _row([R.RUNNING], CheckpointDone, _ADVANCED,
         "owner completes a checkpoint without gates (after its soak); advance", rows.checkpoint_done),
    _row(_STOPPED, CheckpointDone, [],
         "owner completes a checkpoint without gates; nothing advances", rows.checkpoint_done, stays=True),
    _row([R.RUNNING, R.PAUSED, R.HELD], HoldOpened, [R.HELD],
         "open a manual hold (anyone acting for a plan role)", rows.hold_opened),
    _row([R.HYPERCARE], HoldOpened, [R.HELD],
         "open a manual hold on hyper-care (anyone acting for a plan role)", rows.hold_opened),
    _row([R.FROZEN], HoldOpened, [R.FROZEN], "open a manual hold under the freeze", rows.hold_opened),
    _row([R.HELD], HoldReleased, [R.HELD, R.PAUSED, R.RUNNING, R.HYPERCARE, R.COMPLETED],
         "record a release by an acting release role (any/all, two people for all); advance when clear",
         rows.hold_released),
    _row([R.FROZEN], HoldReleased, [R.FROZEN], "record a release under the freeze", rows.hold_released),
    _row([R.HELD, R.FROZEN], ReleaseWithdrawn, [],
         "take back one's own release of a hold still open (a `mode: all` hold needs that role again)",
         rows.release_withdrawn, stays=True),
    _row([R.AWAITING_SIGNOFF, R.READY, *_STOPPED], PacketAdopted, [],
         "follow the adopted version; progress and evidence carry over", rows.packet_adopted, stays=True),
    _row([R.RUNNING], PacketAdopted, _ADVANCED,
         "follow the adopted version (evidence carries over); advance", rows.packet_adopted),
    _row([R.HYPERCARE], PacketAdopted, [],
         "follow the adopted version; every checkpoint is done, so nothing runs again",
         rows.packet_adopted, stays=True),
    _row([R.RUNNING, R.HELD], Pause, [R.PAUSED, R.HELD], "pause (pausers)", rows.pause),
    _row([R.HYPERCARE], Pause, [R.PAUSED], "pause hyper-care (pausers); resuming returns to it", rows.pause),
    _row([R.PAUSED], Resume, _ADVANCED,
         "resume (pausers); the soak in flight resumes where it stopped; nothing completes or shifts "
         "until consecutive_passes passes gathered after the resume; advance", rows.resume),
    _row([R.HELD, R.FROZEN], Resume, [], "lift the pause under a hold or freeze", rows.resume, stays=True),
    _row([R.RUNNING, R.PAUSED, R.HELD], Freeze, [R.FROZEN],
         "freeze (pausers): no traffic change of any kind", rows.freeze),
    _row([R.HYPERCARE], Freeze, [R.FROZEN],
         "freeze hyper-care (pausers): no traffic change of any kind, the rollbacks included", rows.freeze),
    _row([R.FROZEN], Unfreeze, [R.RUNNING, R.PAUSED, R.HELD, R.HYPERCARE, R.COMPLETED],
         "unfreeze (pausers); back to whatever still stops the run, else advance (the soak resumes "
         "where it stopped; nothing completes or shifts until consecutive_passes passes gathered after "
         "the run started again)", rows.unfreeze),
    _row([R.RUNNING, R.PAUSED, R.HELD], RollbackRequested, [R.HELD, R.ROLLING_BACK, R.ROLLED_BACK],
         "cohort: shift it back to its percent before this checkpoint, then hold; "
         "all: every cohort to 0%, holds withdrawn, run ends", rows.rollback),
    _row([R.HYPERCARE], RollbackRequested, [R.HELD, R.ROLLING_BACK, R.ROLLED_BACK],
         "cohort: the last traffic checkpoint's cohort back to its percent before it, then hold "
         "hyper-care; all: every cohort to 0%, run ends", rows.rollback),
    _row([R.HELD, R.HYPERCARE], Restore, [R.HYPERCARE, R.HELD, R.PAUSED, R.FROZEN, R.ROLLING_BACK,
                                          R.ROLLED_BACK],
         "during hyper-care (start_and_rollback): a cohort short of the plan back to its final percent "
         "on fresh passing readings taken for it (a failing one takes its action and nothing moves); "
         "hyper-care's holds withdrawn, hyper-care starts again", rows.restore_cohort),
    _row([R.ROLLING_BACK], RollbackRequested, [R.ROLLING_BACK],
         "retry the rollback commands the control plane has not confirmed", rows.retry_rollback),
    _row([R.RUNNING], ActuationSucceeded, _ADVANCED, "confirm a shift; advance", rows.actuation_succeeded),
    _row(_STOPPED, ActuationSucceeded, [], "confirm a shift", rows.actuation_succeeded, stays=True),
    _row([R.HYPERCARE], ActuationSucceeded, [],
         "confirm a rollback shift retried during hyper-care", rows.actuation_succeeded, stays=True),
    _row([R.HYPERCARE], ActuationFailed, [R.HELD],
         "a refused rollback shift during hyper-care: told and held; a stale report: recorded only",
         rows.actuation_failed, stays=True),
    _row(_LIVE, ActuationFailed, [R.HELD, R.FROZEN],
         "a refused checkpoint shift: cohort back where it was, checkpoint held; a refused rollback: "
         "told and held; a stale report: recorded only", rows.actuation_failed, stays=True),
    _row([R.ROLLING_BACK], ActuationSucceeded, [R.ROLLING_BACK, R.ROLLED_BACK],
         "confirm a rollback shift; rolled back once every cohort is confirmed", rows.actuation_succeeded),
    _row([R.ROLLING_BACK], ActuationFailed, [R.ROLLING_BACK],
         "a refused rollback shift: told; a person retries", rows.actuation_failed),
    _row([R.AWAITING_SIGNOFF, R.READY, *_LIVE], Abort, [R.ABORTED, R.SUPERSEDED],
         "call the run off while no traffic is on the new path (not in hyper-care: roll back); "
         "superseded when a newer revision's run replaces it", rows.abort),
)
# fmt: on


def _index(table: Iterable[Row[Any]]) -> dict[tuple[RunState, type[Any]], Row[Any]]:
    index: dict[tuple[RunState, type[Any]], Row[Any]] = {}
    for row in table:
        for state in row.states:
            key = (state, row.event)
            if key in index:
                raise ValueError(f"two rows for {row.event.kind} in {state}")
            index[key] = row
    return index


_INDEX = _index(TABLE)


def row_for(state: RunState, event: type[Any]) -> Row[Any] | None:
    return _INDEX.get((state, event))


@dataclass(frozen=True, slots=True)
class Transition:
    progress: RunProgress
    effects: tuple[Effect, ...]

    def of(self, kind: type[T]) -> tuple[T, ...]:
        return tuple(e for e in self.effects if isinstance(e, kind))


def new_run(*, run_id: str, plan: Plan, packet: Packet, at: datetime) -> RunProgress:
    """A run of `plan` following `packet` (its authoritative version), waiting for sign-off."""
    if packet.plan_revision != plan.revision:
        raise Refused(f"packet v{packet.version} was built from another plan revision")
    cohorts = sorted({c.traffic.cohort for c in plan.checkpoints if c.traffic is not None})
    return RunProgress(
        run_id=run_id,
        plan_revision=plan.revision,
        packet_version=packet.version,
        # authority.signoff is never empty, so a new run always waits for sign-off.
        state=RunState.AWAITING_SIGNOFF,
        opened_at=at,
        checkpoints={c.id: CheckpointProgress() for c in packet.timeline},
        traffic={cohort: 0.0 for cohort in cohorts},
    )


def step(progress: RunProgress, event: Event, *, plan: Plan, packet: Packet, roster: Acting) -> Transition:
    """Apply one event. `packet` is the authoritative packet (for `PacketAdopted`: the one adopted)."""
    _refuse_in_any_state(progress, event, plan=plan, roster=roster)
    row = _INDEX.get((progress.state, type(event)))
    if row is None:
        raise IllegalTransition(event, progress.state, _why_not(progress, event, plan, roster))
    _check_inputs(progress, event, plan=plan, packet=packet)
    draft = Draft(progress=progress, event=_redacted(event), plan=plan, packet=packet, roster=roster)
    row.apply(draft, draft.event)
    if not row.allows(progress.state, draft.progress.state):
        # The table is the contract; ending anywhere else is an engine bug, never a user error.
        raise RuntimeError(f"{event.kind} from {progress.state} ended in {draft.progress.state}")
    return Transition(progress=draft.progress, effects=tuple(draft.effects))


def _refuse_in_any_state(progress: RunProgress, event: Event, *, plan: Plan, roster: Acting) -> None:
    """Refusals that do not depend on the run's state, so they read the same whatever the state."""
    if isinstance(event, HoldOpened) and not any(roster.may_act(event.user, role) for role in plan.roles):
        raise Refused(f"{event.user} does not act for any role in this plan, so cannot open a hold.")
    if isinstance(event, HoldReleased | ReleaseWithdrawn):
        refuse_if_closed(progress, event.hold_id)


def _check_inputs(progress: RunProgress, event: Event, *, plan: Plan, packet: Packet) -> None:
    if plan.revision != progress.plan_revision:
        raise Refused(
            f"this run follows plan revision {progress.plan_revision[:12]}, not {plan.revision[:12]}"
        )
    if packet.plan_revision != progress.plan_revision:
        raise Refused(f"packet v{packet.version} belongs to another plan revision")
    if isinstance(event, PacketAdopted):
        if packet.version != event.version:
            raise Refused(f"the adoption names v{event.version} but came with packet v{packet.version}")
        if event.version <= progress.packet_version:
            raise Refused(
                f"v{event.version} is not newer than v{progress.packet_version}, which the run follows"
            )
        if packet.state in (PacketState.REJECTED, PacketState.SUPERSEDED):
            raise Refused(f"v{packet.version} is {packet.state} and cannot be adopted")
    elif packet.version != progress.packet_version:
        raise Refused(
            f"the run follows packet v{progress.packet_version}; v{packet.version} ({packet.state}) "
            "changes nothing until it is adopted"
        )
    strangers = [c.id for c in packet.timeline if not plan.has_checkpoint(c.id)]
    if strangers:
        raise Refused(f"packet v{packet.version} names checkpoints the plan lacks: {', '.join(strangers)}")


def _redacted(event: Event) -> Event:
    """The event with every free text redacted, so no secret reaches state, ledger or messages."""
    if isinstance(event, GateResults):
        return replace(event, results=tuple(replace(r, reason=redact(r.reason)) for r in event.results))
    if isinstance(event, Pause | Freeze | HoldOpened | RollbackRequested | Abort):
        return replace(event, reason=redact(event.reason))
    if isinstance(event, ActuationFailed):
        return replace(event, detail=redact(event.detail))
    if isinstance(event, HoldReleased) and event.note:
        return replace(event, note=redact(event.note))
    return event


def _why_not(progress: RunProgress, event: Event, plan: Plan, roster: Acting) -> str:
    state = progress.state
    if isinstance(event, Start) and state is R.AWAITING_SIGNOFF:
        missing = [r for r in plan.authority.signoff if r not in progress.signoffs]
        return "waiting for sign-off from " + who_acts(roster, missing, joiner=" and ")
    if isinstance(event, HoldReleased | ReleaseWithdrawn) and not progress.open_holds():
        return "no hold is open"
    if isinstance(event, Resume) and progress.paused is None:
        return "the run is not paused"
    if isinstance(event, Unfreeze) and progress.frozen is None:
        return "the run is not frozen"
    if isinstance(event, RollbackRequested | Freeze | Pause) and state is R.FROZEN:
        return "the run is frozen: no traffic change of any kind until an authority unfreezes it"
    if state in (R.ROLLED_BACK, R.COMPLETED, R.ABORTED, R.SUPERSEDED):
        return "the run has ended"
    if state is R.HYPERCARE and isinstance(event, CheckpointDone | Abort):
        return (
            "every checkpoint is done and the run is in hyper-care; "
            "roll back to take traffic off the new path"
        )
    when = [s.words for s in RunState if (s, type(event)) in _INDEX]
    return "only while the run is " + " or ".join(when) if when else "the run never takes it"
