"""Advancement: where the engine moves by itself, inside the plan's thresholds.

After every event that could unblock the run, `advance` settles the run state and, only while
the run is `running`, walks the authoritative packet's timeline: a checkpoint starts once its
`after` dependencies are done, so branches the packet draws side by side run side by side, each
with its own soak, gates and holds. Two traffic checkpoints of one cohort never overlap: a traffic
checkpoint waits until every earlier one of its cohort in the timeline is done (the packet places
them one after the other the same way).

A stop is the run's, not a branch's: a hold, a pause or a freeze anywhere stops every branch (the
run is `held`, `paused` or `frozen`), and no branch's soak counts the time stopped. A war room
releases a hold so that nothing moves until someone with the right role says so; letting a branch
widen traffic beside a held one would make "held" mean "partly held". "The current checkpoint"
(status, a cohort rollback by hand) is the first in flight in timeline order.

A checkpoint in flight completes by itself only on evidence: its soak elapsed, its shift
confirmed, and each of its gates' last `consecutive_passes` results passing. Without gates there
is no threshold to be autonomous inside, so its owner says done.

When the last checkpoint is done the run completes, or, when the plan declares hyper-care, enters
`hypercare` (see `engine.hypercare`): there is nothing left to walk, so `advance` moves no traffic
from then on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from packets.engine import hypercare, watch
from packets.engine.draft import Draft
from packets.engine.effects import LedgerKind, Plain, ScheduleGateChecks, StopGateChecks
from packets.engine.end import finish
from packets.engine.events import actor_of
from packets.engine.holds import (
    HoldNeed,
    conflict_rule,
    has_open_hold,
    open_hold,
    releasers,
    unmet_before_run,
    window_in_force,
)
from packets.engine.progress import TERMINAL, CheckpointState, RunState
from packets.engine.traffic import ADVANCE, command
from packets.gates import GateResult, Verdict, last_failed, streak_passes, verdict
from packets.messages import RunStateLine
from packets.packet import HoldSource
from packets.plan import Traffic

_NOT_SETTLED: frozenset[RunState] = frozenset(
    {*TERMINAL, RunState.AWAITING_SIGNOFF, RunState.READY, RunState.ROLLING_BACK}
)


def settle(d: Draft) -> None:
    """The run state from what stops it, strongest first: freeze, then holds, then a pause.

    Deriving it (rather than remembering where to return to) means a hold released while paused
    leaves the run paused, and an unfreeze returns to whatever still stops it. With nothing
    stopping it the run is `running` during the stages and `hypercare` after them.
    """
    progress = d.progress
    if progress.state in _NOT_SETTLED:
        return
    if progress.frozen is not None:
        state = RunState.FROZEN
    elif progress.open_holds():
        state = RunState.HELD
    elif progress.paused is not None:
        state = RunState.PAUSED
    elif progress.in_hypercare:
        state = RunState.HYPERCARE
    else:
        state = RunState.RUNNING
    _recovery(d, state)
    d.update(state=state)


_STOPS: frozenset[RunState] = frozenset({RunState.PAUSED, RunState.HELD, RunState.FROZEN})


def _recovery(d: Draft, state: RunState) -> None:
    """Recovery is deliberate. Stopping notes when; starting again pushes the soak in flight back
    by the time stopped (it resumes where it stopped), and after a pause or a freeze marks the
    moment, so nothing completes or shifts on passes gathered before it."""
    progress = d.progress
    if state in _STOPS:
        deliberate = progress.stop_deliberate or progress.paused is not None or progress.frozen is not None
        d.update(stopped_at=progress.stopped_at or d.at, stop_deliberate=deliberate)
        for flight in d.flights():
            if d.checkpoint(flight).shift_due_since is not None:
                # A shift asked for before the stop is asked for again, on readings from after it.
                d.update_checkpoint(flight, shift_due_since=None)
        return
    stopped_at = progress.stopped_at
    if stopped_at is None:
        return
    for flight in d.flights():
        soak_until = d.checkpoint(flight).soak_until
        if soak_until is not None and soak_until > stopped_at and d.at > stopped_at:
            d.update_checkpoint(flight, soak_until=soak_until + (d.at - stopped_at))
    d.update(
        stopped_at=None,
        stop_deliberate=False,
        restarted_at=d.at if progress.stop_deliberate else progress.restarted_at,
    )


def advance(d: Draft) -> None:
    settle(d)
    if d.progress.state is RunState.RUNNING:
        _overruns(d)
    # Each step readies, starts, clears or completes one checkpoint: four per checkpoint bound it.
    for _ in range(4 * len(d.order) + 2):
        if d.progress.state is not RunState.RUNNING or not _step(d):
            break
    if d.progress.state is not RunState.RUNNING or d.flights():
        return
    if all(d.checkpoint(c).state is CheckpointState.DONE for c in d.order):
        if d.plan.hypercare is not None:
            hypercare.begin(d)
        else:
            d.emit(StopGateChecks(checkpoint=None))
            finish(d, RunState.COMPLETED, actor="engine", why="every checkpoint is done")


def _overruns(d: Draft) -> None:
    """A checkpoint still running when its not_after in force has passed is never left to run on
    silently: the room and its owner (by DM) are told, once, and a conflict hold on it, released
    under the checkpoint's own rule, stops what follows until a person decides. A conflict the
    war room already accepted for it (a released conflict hold: "it cannot finish by its
    not_after; run it anyway") was that decision, taken knowingly: it is not asked again."""
    for checkpoint in d.flights():
        if d.checkpoint(checkpoint).state not in (CheckpointState.ACTIVE, CheckpointState.SOAKING):
            continue
        _, not_after = window_in_force(d, checkpoint)
        if not_after is None or d.at <= not_after:
            continue
        title = d.spec(checkpoint).title
        # Fixed values only: the reason is how an overrun already raised is recognised.
        reason = (
            f"{title} is still running past its not_after {not_after.isoformat()}; "
            "what follows waits until a person decides"
        )
        if any(
            h.checkpoint == checkpoint and (h.reason == reason or h.source is HoldSource.CONFLICT)
            for h in d.progress.holds.values()
        ):
            continue
        release_by, mode = conflict_rule(d, checkpoint)
        open_hold(
            d,
            HoldNeed(reason, HoldSource.CONFLICT, release_by, mode),
            checkpoint=checkpoint,
            opened_by="engine",
        )
        planned = d.planned(checkpoint)
        d.notify(
            RunStateLine.line("running past its window", {"reason": reason, "checkpoint": checkpoint}),
            roles=[planned.owner_role],
            direct=True,
        )
    settle(d)


def _step(d: Draft) -> bool:
    """Move one checkpoint in flight, else bring the next one in; False when all have to wait.

    Traffic goes out last: a hold another branch opens in the same instant stops the run first,
    so no shift ever leaves beside a hold opened with it.
    """
    flights = d.flights()
    shifting = [c for c in flights if _shifts_next(d, c)]
    for checkpoint in [c for c in flights if c not in shifting]:
        if d.progress.state is not RunState.RUNNING:
            return False
        if _move(d, checkpoint):
            return True
    coming = _next(d)
    if coming is not None:
        d.update_checkpoint(coming, state=CheckpointState.READY)
        return True
    # A traffic step that would open holds before it runs goes before one that would shift.
    for checkpoint in sorted(shifting, key=lambda c: not unmet_before_run(d, c)):
        if d.progress.state is not RunState.RUNNING:
            return False
        if _move(d, checkpoint):
            return True
    return False


def _shifts_next(d: Draft, checkpoint: str) -> bool:
    return d.checkpoint(checkpoint).state is CheckpointState.READY and d.spec(checkpoint).traffic is not None


def _next(d: Draft) -> str | None:
    """The first pending checkpoint in timeline order whose dependencies are all done and whose
    cohort (a traffic checkpoint's) no earlier traffic checkpoint is still to shift."""
    order = d.order
    for position, checkpoint in enumerate(order):
        if d.checkpoint(checkpoint).state is not CheckpointState.PENDING:
            continue
        deps = [a for a in d.planned(checkpoint).after if a in d.progress.checkpoints]
        if all(d.checkpoint(a).state is CheckpointState.DONE for a in deps) and not _cohort_busy(
            d, checkpoint, order[:position]
        ):
            return checkpoint
    return None


def _cohort_busy(d: Draft, checkpoint: str, earlier: tuple[str, ...]) -> bool:
    traffic = d.spec(checkpoint).traffic
    if traffic is None:
        return False
    return any(
        (other := d.spec(c).traffic) is not None
        and other.cohort == traffic.cohort
        and d.checkpoint(c).state is not CheckpointState.DONE
        for c in earlier
    )


def _move(d: Draft, checkpoint: str) -> bool:
    """Start or complete the checkpoint in flight; False when it has to wait."""
    state = d.checkpoint(checkpoint).state
    if state is CheckpointState.READY:
        return _run(d, checkpoint)
    if state is CheckpointState.HELD:
        if has_open_hold(d, checkpoint):
            return False
        d.update_checkpoint(checkpoint, state=CheckpointState.READY, cleared=True)
        return True
    return _try_complete(d, checkpoint)


def _run(d: Draft, checkpoint: str) -> bool:
    spec = d.spec(checkpoint)
    not_before, _ = window_in_force(d, checkpoint)
    if not_before is not None and d.at < not_before:
        return False
    needs = unmet_before_run(d, checkpoint)
    if needs:
        d.update_checkpoint(checkpoint, state=CheckpointState.HELD)
        for need in needs:
            open_hold(d, need, checkpoint=checkpoint, opened_by="engine")
        settle(d)
        return False
    if spec.traffic is not None:
        return _shift(d, checkpoint, spec.traffic)
    if spec.hold is not None and not spec.gates:
        # A hold checkpoint is its hold: releasing it is completing it.
        complete(d, checkpoint, by=releasers(d, checkpoint) or ("engine",))
        return True
    _start(d, checkpoint, soak=spec.soak)
    return True


def _gate_failing(d: Draft, checkpoint: str) -> list[str]:
    """The checkpoint's own gates and the watched gates (`engine.watch`) whose last reading fails."""
    evidence = d.checkpoint(checkpoint).evidence
    own = [g for g in d.spec(checkpoint).gates if last_failed(evidence.get(g, ()), no_data=d.no_data(g))]
    watching = watch.watched(d.plan, d.progress)
    return [*own, *watch.failing_watched(d.progress, watching, no_data=d.no_data)]


def _shift(d: Draft, checkpoint: str, traffic: Traffic) -> bool:
    previous = d.progress.traffic.get(traffic.cohort, 0.0)
    rising = traffic.percent > previous
    vouching = shift_gates(d, checkpoint) if rising else ()
    if vouching and d.checkpoint(checkpoint).shift_due_since is None:
        # Check before moving: the readings that may vouch for this shift are taken from now on.
        d.update_checkpoint(checkpoint, shift_due_since=d.at)
    if rising and _gate_failing(d, checkpoint):
        # Traffic never rises on a failing gate: a retry after a rollback, or a step while a
        # watched gate fails, waits until they pass. The next passing result advances it.
        return False
    if rising and _unproven_since_restart(d, checkpoint):
        return False
    if vouching and not _fresh_and_passing(d, checkpoint, vouching):
        return False
    command(
        d,
        cohort=traffic.cohort,
        percent=traffic.percent,
        checkpoint=checkpoint,
        cause=ADVANCE,
        actor=actor_of(d.event),
        why=_with_vouchers(d, checkpoint, cause_of(d, checkpoint), vouching),
    )
    _start(
        d, checkpoint, soak=d.spec(checkpoint).soak, state=CheckpointState.SOAKING, previous_percent=previous
    )
    d.update_checkpoint(checkpoint, shift_due_since=None)
    if rising:
        d.update(restarted_at=None)
    return True


def latest_readings(d: Draft, checkpoint: str, gate: str) -> tuple[GateResult, ...]:
    """A gate's latest readings: the checkpoint's own evidence, or the watch's, whichever is newer."""
    own = d.checkpoint(checkpoint).evidence.get(gate, ())
    watched = d.progress.watch_evidence.get(gate, ())
    return max(own, watched, key=lambda w: (w[-1].at or d.at) if w else d.at - timedelta(days=36500))


def shift_gates(d: Draft, checkpoint: str) -> tuple[str, ...]:
    """The gates that must vouch for a traffic increase of `checkpoint`: its own (bar a readiness
    gate, which may only become true once traffic flows) and the watched gates."""
    own = [g for g in d.spec(checkpoint).gates if not d.plan.is_readiness(g)]
    return tuple(dict.fromkeys((*own, *watch.watched(d.plan, d.progress))))


def _with_vouchers(
    d: Draft, checkpoint: str, cause: dict[str, Any], gates: tuple[str, ...]
) -> dict[str, Any]:
    """The cause of a traffic increase with the fresh readings that vouched for it."""
    readings = [found[-1].as_json() for g in gates if (found := latest_readings(d, checkpoint, g))]
    return {**cause, "gates": readings} if readings else cause


def _fresh_and_passing(d: Draft, checkpoint: str, gates: tuple[str, ...]) -> bool:
    """Whether every gate's latest reading was taken for this shift (since it became due), is no
    older than the gate's interval, and passes. A failing one has taken its action already, as the
    readings came in (`engine.gates.take`); the shift just does not happen."""
    due = d.checkpoint(checkpoint).shift_due_since or d.at
    for gate in gates:
        readings = latest_readings(d, checkpoint, gate)
        last = readings[-1] if readings else None
        if last is None or last.at is None or last.at < due:
            return False
        if last.at < d.at - d.plan.gate_policy_of(gate).interval:
            return False
        if verdict(last.outcome, d.no_data(gate)) is not Verdict.PASS:
            return False
    return True


def _unproven_since_restart(d: Draft, checkpoint: str) -> bool:
    """After a resume or an unfreeze, whether a gate still lacks its passes gathered since."""
    since = d.progress.restarted_at
    if since is None:
        return False
    return not all(
        streak_passes(
            latest_readings(d, checkpoint, g), needed=d.needed_passes(g), no_data=d.no_data(g), after=since
        )
        for g in shift_gates(d, checkpoint)
    )


def _start(
    d: Draft,
    checkpoint: str,
    *,
    soak: timedelta,
    state: CheckpointState = CheckpointState.ACTIVE,
    previous_percent: float | None = None,
) -> None:
    spec = d.spec(checkpoint)
    progress = d.checkpoint(checkpoint)
    d.update_checkpoint(
        checkpoint,
        state=state,
        started_at=progress.started_at or d.at,
        soak_until=d.at + soak,
        attempt=progress.attempt + 1,
        # A new attempt earns its own streak: evidence from before a rollback does not count.
        evidence={},
        tallies={},
        previous_percent=previous_percent if previous_percent is not None else progress.previous_percent,
        shift_confirmed=False,
    )
    if spec.gates:
        d.emit(ScheduleGateChecks(checkpoint=checkpoint, gates=tuple(spec.gates)))
    planned = d.planned(checkpoint)
    data: dict[str, Plain] = {
        "checkpoint": checkpoint,
        "title": spec.title,
        "attempt": progress.attempt + 1,
        "soak_until": (d.at + soak).isoformat(),
    }
    d.ledger(LedgerKind.CHECKPOINT_STARTED, actor=actor_of(d.event), payload=data)
    d.tell_state("checkpoint started", roles=[planned.owner_role, *planned.observer_roles], data=data)


def _try_complete(d: Draft, checkpoint: str) -> bool:
    spec = d.spec(checkpoint)
    progress = d.checkpoint(checkpoint)
    if not spec.gates:
        return False
    if progress.soak_until is not None and d.at < progress.soak_until:
        return False
    if spec.traffic is not None and not progress.shift_confirmed:
        return False
    evidence = progress.evidence
    # Started before the last resume or unfreeze: only passes gathered since count.
    restarted = d.progress.restarted_at
    started = progress.soak_until - spec.soak if progress.soak_until is not None else None
    after = restarted if restarted is not None and (started is None or started < restarted) else None
    if all(
        streak_passes(evidence.get(g, ()), needed=d.needed_passes(g), no_data=d.no_data(g), after=after)
        for g in spec.gates
    ):
        complete(d, checkpoint, by=("engine",))
        return True
    return False


def complete(d: Draft, checkpoint: str, *, by: tuple[str, ...]) -> None:
    spec = d.spec(checkpoint)
    progress = d.checkpoint(checkpoint)
    d.update_checkpoint(checkpoint, state=CheckpointState.DONE, done_at=d.at, done_by=by)
    evidence = [r.as_json() for g in spec.gates for r in progress.evidence.get(g, ())]
    d.ledger(
        LedgerKind.CHECKPOINT_COMPLETED,
        actor=by[0] if len(by) == 1 else "engine",
        payload={"checkpoint": checkpoint, "by": list(by), "gates": evidence, "attempt": progress.attempt},
    )
    if spec.gates:
        d.emit(StopGateChecks(checkpoint=checkpoint))
    planned = d.planned(checkpoint)
    d.tell_state(
        "checkpoint done",
        roles=[planned.owner_role, *planned.observer_roles],
        data={"checkpoint": checkpoint, "title": spec.title, "by": ", ".join(by)},
    )


def cause_of(d: Draft, checkpoint: str) -> dict[str, Any]:
    """Why a checkpoint may move traffic now: the event, and who or which results cleared the way.

    `after` lists each dependency (and the checkpoint before it in the timeline) with who
    completed it and the gate results it completed on;
    `released_by` the people who released its holds; `started_by` who started the run.
    """
    # The dependencies, and the checkpoint just before it in the timeline when it is done (on a
    # chain, that one completing is what let this one start; beside a branch, it let nothing).
    order = d.order
    position = order.index(checkpoint)
    before = order[position - 1 : position] if position > 0 else ()
    after = []
    for dep in dict.fromkeys((*d.planned(checkpoint).after, *before)):
        if dep not in d.progress.checkpoints or d.checkpoint(dep).state is not CheckpointState.DONE:
            continue
        dep_progress = d.checkpoint(dep)
        gates = [r.as_json() for g in d.spec(dep).gates for r in dep_progress.evidence.get(g, ())]
        after.append({"checkpoint": dep, "done_by": list(dep_progress.done_by), "gates": gates})
    cause: dict[str, Any] = {
        "event": d.event.kind,
        "after": after,
        "released_by": list(releasers(d, checkpoint)),
        "started_by": d.progress.started_by,
    }
    actor = actor_of(d.event)
    if actor != "engine":
        cause["user"] = actor
    return cause
