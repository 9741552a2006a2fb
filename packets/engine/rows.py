"""What each row of the transition table does. `stages.TABLE` says which row applies when; each
function here checks who may do it, changes the draft, and lets `advance` move on if it can.
"""

from __future__ import annotations

from packets.authority import Refused
from packets.bundle import bundle_holds
from packets.engine import hypercare, restore
from packets.engine.advance import advance, complete, settle
from packets.engine.draft import Draft
from packets.engine.effects import LedgerKind
from packets.engine.end import finish, wind_down
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
    Unfreeze,
)
from packets.engine.gates import take
from packets.engine.holds import HoldNeed, open_hold, release, take_back
from packets.engine.progress import CheckpointProgress, CheckpointState, RunState, Signoff, Stop
from packets.engine.traffic import (
    confirm,
    failed_rollback,
    global_rollback,
    hold_after_rollback,
    refuse,
    retry,
    rollback_cohort,
)
from packets.packet import HoldSource


def _illegal(d: Draft, detail: str) -> IllegalTransition:
    return IllegalTransition(d.event, d.progress.state, detail)


def missing_signoffs(d: Draft) -> list[str]:
    return [
        role
        for role in d.plan.authority.signoff
        if (s := d.progress.signoffs.get(role)) is None or s.revision != d.progress.plan_revision
    ]


# -- before the run ------------------------------------------------------------------------------


def signoff(d: Draft, event: SignoffGiven) -> None:
    # The revision first: a sign-off of another plan is refused before anyone's role is looked at.
    if event.revision != d.progress.plan_revision:
        raise Refused(
            f"That sign-off is for revision {event.revision[:12]}, but this run is on revision "
            f"{d.progress.plan_revision[:12]}; a changed plan inherits no sign-off."
        )
    roles = d.plan.authority.signoff
    role = event.role if event.role is not None else _role_to_sign(d, event.user)
    if role not in roles:
        raise Refused(f"{role} does not sign off this plan; sign-off is by {', '.join(roles)}")
    if not d.roster.may_act(event.user, role):
        raise Refused(f"{event.user} may not sign off as {role}: {d.roster.acting_user(role)} acts for it")
    earlier = d.progress.signoffs.get(role)
    if earlier is not None:
        raise Refused(f"{role} already signed off, by {earlier.user} at {earlier.at.isoformat()}")
    other = next((s for s in d.progress.signoffs.values() if s.user == event.user), None)
    if other is not None:
        # Each sign-off role is a separate approval: one person wearing two hats approves once.
        raise Refused(f"{event.user} already signed off as {other.role}; {role} needs another person")
    record = Signoff(role=role, user=event.user, revision=event.revision, at=event.at)
    d.update(signoffs={**d.progress.signoffs, role: record})
    d.ledger(LedgerKind.SIGNOFF, actor=event.user, payload={"role": role, "revision": event.revision})
    waiting = missing_signoffs(d)
    if not waiting:
        d.update(state=RunState.READY)
        d.ledger(LedgerKind.RUN_READY, actor="engine", payload={"signoffs": sorted(d.progress.signoffs)})
        d.tell_state("ready", roles=d.plan.authority.start_and_rollback, data={})


def _role_to_sign(d: Draft, user: str) -> str:
    """The sign-off role a user signs as when the command names none."""
    roster = d.roster
    mine = [r for r in d.plan.authority.signoff if roster.may_act(user, r)]
    for role in mine:
        if role not in d.progress.signoffs:
            return role
    if mine:
        raise Refused(f"{user} has already signed off as {', '.join(mine)}.")
    acting = ", ".join(f"{r}: {roster.acting_user(r)}" for r in d.plan.authority.signoff)
    raise Refused(f"{user} does not act for a sign-off role ({acting}).")


def start(d: Draft, event: Start) -> None:
    role = d.require(event.user, d.plan.authority.start_and_rollback, "start the run")
    if missing_signoffs(d):
        raise _illegal(d, f"waiting for sign-off from {d.who_acts(missing_signoffs(d), joiner=' and ')}")
    window = d.plan.window
    if event.at >= window.end:
        # A run started after its window would change production outside the agreed time.
        closed = window.end.astimezone(window.start.tzinfo)
        when = (
            closed.strftime("%H:%M")
            if closed.date() == window.start.date()
            else closed.strftime("%H:%M on %Y-%m-%d")
        )
        raise Refused(
            f"The cutover window closed at {when}; a run cannot start after its window. "
            "Agree a new window and open the plan again."
        )
    d.update(state=RunState.RUNNING, started_at=event.at, started_by=event.user)
    d.ledger(
        LedgerKind.RUN_STARTED,
        actor=event.user,
        payload={"role": role, "packet_version": d.progress.packet_version},
    )
    d.tell_state(
        "started",
        roles=[*d.plan.authority.start_and_rollback, *d.plan.authority.signoff],
        data={"by": event.user, "packet_version": d.progress.packet_version},
    )
    _open_bundle_holds(d)
    advance(d)


def _open_bundle_holds(d: Draft) -> None:
    """What the bundle still owes (an unresolved waiver, a missing rollback pointer, a superseded
    artifact) holds the handoff: run-wide holds its owners release, saying how it was resolved."""
    if d.plan.bundle is None:
        return
    for need in bundle_holds(d.plan.bundle, start_and_rollback=tuple(d.plan.authority.start_and_rollback)):
        hold = HoldNeed(need.reason, HoldSource.BUNDLE, tuple(need.release_by))
        open_hold(d, hold, checkpoint=None, opened_by="engine")
    settle(d)


# -- the clock, telemetry, the control plane ------------------------------------------------------


def tick(d: Draft, event: Event) -> None:
    advance(d)


def nothing(d: Draft, event: Event) -> None:
    """A stopped or finished run waits for people; the clock alone changes nothing."""


def hypercare_tick(d: Draft, event: Event) -> None:
    """Hyper-care ends, and the run completes, once its last cadence step ran out."""
    hypercare.end_if_due(d)


def gate_results(d: Draft, event: GateResults) -> None:
    take(d, event)
    if d.progress.state is not RunState.ROLLING_BACK:
        advance(d)


def actuation_succeeded(d: Draft, event: ActuationSucceeded) -> None:
    confirm(d, event)
    advance(d)


def actuation_failed(d: Draft, event: ActuationFailed) -> None:
    refuse(d, event)
    settle(d)


# -- people --------------------------------------------------------------------------------------


def checkpoint_done(d: Draft, event: CheckpointDone) -> None:
    checkpoint = event.checkpoint
    if not d.packet.has(checkpoint):
        raise _illegal(d, f"packet v{d.packet.version} has no checkpoint {checkpoint}")
    owner = d.planned(checkpoint).owner_role
    d.require(event.user, [owner], f"mark {checkpoint} done")
    progress = d.checkpoint(checkpoint)
    running = progress.state in (CheckpointState.ACTIVE, CheckpointState.SOAKING)
    if checkpoint not in d.flights() or not running:
        raise _illegal(d, f"{checkpoint} is {progress.state}, not running")
    spec = d.spec(checkpoint)
    if spec.gates:
        raise _illegal(d, f"{checkpoint} completes when its gates pass ({', '.join(spec.gates)})")
    if progress.soak_until is not None and event.at < progress.soak_until:
        raise _illegal(d, f"{checkpoint} soaks until {progress.soak_until.isoformat()}")
    if spec.traffic is not None and not progress.shift_confirmed:
        raise _illegal(d, f"the traffic shift of {checkpoint} is not confirmed by the control plane yet")
    complete(d, checkpoint, by=(event.user,))
    advance(d)


def hold_opened(d: Draft, event: HoldOpened) -> None:
    # Who may open a hold at all is checked before the table (table._refuse_in_any_state).
    release_by = event.release_by or tuple(d.plan.authority.start_and_rollback)
    unknown = [r for r in release_by if r not in d.plan.roles]
    if unknown:
        raise Refused(f"there is no role named {', '.join(unknown)} in this plan")
    if event.checkpoint and not d.packet.has(event.checkpoint):
        raise _illegal(d, f"packet v{d.packet.version} has no checkpoint {event.checkpoint}")
    # Unnamed: the checkpoint in flight, or hyper-care once the stages are over, else the whole run.
    checkpoint = (
        event.checkpoint or d.in_flight() or (hypercare.HYPERCARE if d.progress.in_hypercare else None)
    )
    reason = event.reason or f"held by {event.user}"
    open_hold(
        d, HoldNeed(reason, HoldSource.MANUAL, tuple(release_by)), checkpoint=checkpoint, opened_by=event.user
    )
    settle(d)


def hold_released(d: Draft, event: HoldReleased) -> None:
    release(d, event.hold_id, event.user, note=event.note)
    advance(d)


def release_withdrawn(d: Draft, event: ReleaseWithdrawn) -> None:
    take_back(d, event.hold_id, event.user)


def packet_adopted(d: Draft, event: PacketAdopted) -> None:
    d.require(event.user, d.plan.authority.adopt_packets, f"adopt packet v{event.version}")
    dropped = [c for c in d.progress.flights(d.progress.checkpoints) if not d.packet.has(c)]
    if dropped:
        raise _illegal(d, f"packet v{event.version} drops {', '.join(dropped)}, which is in flight")
    in_flight = d.progress.in_flight(d.progress.checkpoints)
    previous = d.progress.packet_version
    # Progress is per checkpoint id, so evidence gathered while soaking carries over unchanged.
    added = {c: CheckpointProgress() for c in d.order if c not in d.progress.checkpoints}
    d.update(packet_version=event.version, checkpoints={**d.progress.checkpoints, **added})
    d.ledger(
        LedgerKind.PACKET_FOLLOWED,
        actor=event.user,
        payload={"version": event.version, "previous": previous, "in_flight": in_flight},
    )
    if d.progress.state not in (RunState.AWAITING_SIGNOFF, RunState.READY):
        advance(d)


def pause(d: Draft, event: Pause) -> None:
    d.require(event.user, d.plan.authority.pausers, "pause the run")
    if d.progress.paused is not None:
        raise _illegal(d, f"already paused by {d.progress.paused.by}")
    d.update(paused=Stop(by=event.user, reason=event.reason, at=event.at))
    d.ledger(LedgerKind.RUN_PAUSED, actor=event.user, payload={"reason": event.reason})
    d.tell_state("paused", roles=d.plan.authority.pausers, data={"by": event.user, "reason": event.reason})
    settle(d)


def resume(d: Draft, event: Resume) -> None:
    d.require(event.user, d.plan.authority.pausers, "resume the run")
    paused = d.progress.paused
    if paused is None:
        raise _illegal(d, "the run is not paused")
    d.update(paused=None)
    d.ledger(
        LedgerKind.RUN_RESUMED, actor=event.user, payload={"paused_by": paused.by, "reason": paused.reason}
    )
    d.tell_state("resumed", roles=d.plan.authority.pausers, data={"by": event.user})
    advance(d)


def freeze(d: Draft, event: Freeze) -> None:
    d.require(event.user, d.plan.authority.pausers, "freeze the run")
    d.update(frozen=Stop(by=event.user, reason=event.reason, at=event.at))
    d.ledger(LedgerKind.RUN_FROZEN, actor=event.user, payload={"reason": event.reason})
    d.tell_state("frozen", roles=d.plan.authority.pausers, data={"by": event.user, "reason": event.reason})
    settle(d)


def unfreeze(d: Draft, event: Unfreeze) -> None:
    d.require(event.user, d.plan.authority.pausers, "unfreeze the run")
    frozen = d.progress.frozen
    if frozen is None:
        raise _illegal(d, "the run is not frozen")
    d.update(frozen=None)
    d.ledger(
        LedgerKind.RUN_UNFROZEN, actor=event.user, payload={"frozen_by": frozen.by, "reason": frozen.reason}
    )
    d.tell_state("unfrozen", roles=d.plan.authority.pausers, data={"by": event.user})
    advance(d)


def restore_cohort(d: Draft, event: Restore) -> None:
    restore.restore(d, event)


def rollback(d: Draft, event: RollbackRequested) -> None:
    d.require(event.user, d.plan.authority.start_and_rollback, "roll back")
    why = {"event": event.kind, "user": event.user, "reason": event.reason}
    if event.scope == "all":
        reason = event.reason or f"rollback by {event.user}"
        where = hypercare.HYPERCARE if d.progress.in_hypercare else None
        global_rollback(d, actor=event.user, why=why, reason=reason, checkpoint=where)
        return
    # During hyper-care nothing is in flight: the cohort is the last traffic checkpoint's, and the
    # hold that follows is on hyper-care.
    during_hypercare = d.progress.in_hypercare and d.in_flight() is None
    checkpoint = (
        hypercare.last_traffic_checkpoint(d) if during_hypercare else d.traffic_flight() or d.in_flight()
    )
    traffic = d.spec(checkpoint).traffic if checkpoint is not None else None
    if checkpoint is None or traffic is None:
        raise _illegal(
            d,
            f"no cohort is in flight{f' at {checkpoint}' if checkpoint else ''}; "
            "hold the run or roll back all",
        )
    if failed_rollback(d, traffic.cohort):
        retry(d, traffic.cohort, actor=event.user, why=why)
    elif not rollback_cohort(d, actor=event.user, why=why, checkpoint=checkpoint):
        raise _illegal(d, f"{traffic.cohort} is already at its percent before {checkpoint}")
    reason = f"{traffic.cohort} rolled back by {event.user} ({event.reason})"
    held = hypercare.HYPERCARE if during_hypercare else checkpoint
    hold_after_rollback(d, held, reason=reason, source=HoldSource.MANUAL, actor=event.user)
    settle(d)


def retry_rollback(d: Draft, event: RollbackRequested) -> None:
    d.require(event.user, d.plan.authority.start_and_rollback, "retry the rollback")
    if event.scope != "all":
        raise _illegal(d, "the whole run is rolling back; retry with scope all")
    why = {"event": event.kind, "user": event.user, "reason": event.reason}
    for cohort in sorted(d.progress.outstanding()):
        retry(d, cohort, actor=event.user, why=why)


def abort(d: Draft, event: Abort) -> None:
    d.require(event.user, d.plan.authority.start_and_rollback, "abort the run")
    if d.progress.in_hypercare:
        raise _illegal(d, "every checkpoint is done and the run is in hyper-care; roll back instead")
    on = sorted(c for c, p in d.progress.traffic.items() if p > 0)
    if on or d.progress.outstanding():
        where = (
            ", ".join(f"{c} at {d.progress.traffic[c]:g}%" for c in on)
            or "a command awaiting the control plane"
        )
        raise _illegal(d, f"traffic is on the new path ({where}); roll back instead")
    if event.superseded_by is not None:
        reason = event.reason or f"superseded by run {event.superseded_by}"
        wind_down(d, actor=event.user, why=reason)
        finish(d, RunState.SUPERSEDED, actor=event.user, why=reason, superseded_by=event.superseded_by)
        return
    reason = event.reason or f"aborted by {event.user}"
    wind_down(d, actor=event.user, why=reason)
    finish(d, RunState.ABORTED, actor=event.user, why=reason)
