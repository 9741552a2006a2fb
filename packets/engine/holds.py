"""Holds inside the stage engine: which holds a checkpoint needs before it runs, opening one,
releasing one (any/all, two-person rule), and withdrawing every open hold when a run ends.

Who may release, and when a hold counts as released, is `packets.authority`'s release rule (the
two-person rule of mode `all` included); this module only records what it decides.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from packets.authority import Refused, ReleaseMode, ReleaseRule, is_released, release_role
from packets.durations import format_duration
from packets.engine.draft import Draft
from packets.engine.effects import CloseHold, LedgerKind, OpenHold
from packets.engine.errors import IllegalTransition
from packets.engine.progress import CheckpointState, HoldRecord, HoldState, Release, RunProgress
from packets.messages import HoldReleased
from packets.packet import HoldSource


@dataclass(frozen=True, slots=True)
class HoldNeed:
    """A hold the engine must open, before it is a record."""

    reason: str
    source: HoldSource
    release_by: tuple[str, ...]
    mode: ReleaseMode = "any"


def _mode(text: str) -> ReleaseMode:
    return "all" if text == "all" else "any"


def window_in_force(d: Draft, checkpoint: str) -> tuple[datetime | None, datetime | None]:
    """(not_before, not_after) of `checkpoint` in the authoritative packet, which carries the
    war room's window changes; the plan's window only for a packet stored without them."""
    planned = d.planned(checkpoint)
    if planned.not_before is not None or planned.not_after is not None:
        return planned.not_before, planned.not_after
    window = d.spec(checkpoint).window
    return (window.not_before, window.not_after) if window is not None else (None, None)


def conflict_rule(d: Draft, checkpoint: str) -> tuple[tuple[str, ...], ReleaseMode]:
    """Who releases a conflict hold on `checkpoint`: its own hold's roles and mode (a `mode: all`
    checkpoint stays two people), else the release authority (adopt_packets), any one of them."""
    spec = d.spec(checkpoint)
    if spec.hold is not None:
        return tuple(spec.hold.release_by), spec.hold.mode
    return tuple(d.plan.authority.adopt_packets), "any"


def _overrun_need(d: Draft, checkpoint: str, not_after: datetime | None) -> HoldNeed | None:
    """A protected checkpoint that, started now, cannot finish by its not_after in force."""
    spec = d.spec(checkpoint)
    if not_after is None or d.at + spec.planned_length <= not_after:
        return None
    # The reason names only fixed values: it is how a released conflict is recognised on a retry.
    reason = (
        f"{spec.title} cannot finish by its not_after {not_after.isoformat()}: it needs "
        f"{format_duration(spec.planned_length)}; a person decides whether it runs"
    )
    release_by, mode = conflict_rule(d, checkpoint)
    return HoldNeed(reason, HoldSource.CONFLICT, release_by, mode)


def needs_before_run(d: Draft, checkpoint: str) -> list[HoldNeed]:
    """The holds a checkpoint waits on before it runs, from the packet's register and the plan.

    The packet's entries come first (they are authoritative); the plan's own hold, the protected
    flag and conflicts add a hold only when the register has none of that source, so a hold is
    never opened twice for the same reason.
    """
    spec = d.spec(checkpoint)
    planned = d.planned(checkpoint)
    # Like packets.timeline: plan-level holds without their own release roles are the release
    # authority's (adopt_packets), the people who own the timeline.
    default_roles = tuple(d.plan.authority.adopt_packets)
    needs = [
        HoldNeed(h.reason, h.source, tuple(h.release_by), _mode(h.mode))
        for h in d.packet.holds
        if h.checkpoint == checkpoint
    ]
    sources = {n.source for n in needs}
    _, not_after = window_in_force(d, checkpoint)
    if HoldSource.PLAN not in sources:
        if spec.hold is not None:
            reason = spec.hold.reason or f"{spec.title} is released by a person"
            needs.append(HoldNeed(reason, HoldSource.PLAN, tuple(spec.hold.release_by), spec.hold.mode))
        elif spec.protected or planned.protected:
            # A protected checkpoint is always a hold, even when every gate is green; and it never
            # runs past its window silently.
            late = (
                f", and would start after its not_after {not_after.isoformat()}"
                if (not_after is not None and d.at > not_after)
                else ""
            )
            reason = f"{spec.title} is protected{late}; a person releases it"
            needs.append(HoldNeed(reason, HoldSource.PLAN, default_roles))
        elif planned.held and not planned.conflict:
            reason = f"{spec.title} is held in packet v{d.packet.version}"
            needs.append(HoldNeed(reason, HoldSource.PLAN, default_roles))
    if HoldSource.CONFLICT not in sources and planned.held and planned.conflict:
        # A conflict without a hold is a note (packets.timeline moves unprotected checkpoints).
        release_by, mode = conflict_rule(d, checkpoint)
        needs.append(HoldNeed(planned.conflict, HoldSource.CONFLICT, release_by, mode))
        sources.add(HoldSource.CONFLICT)
    if HoldSource.CONFLICT not in sources and (spec.protected or planned.protected):
        # The packet may be older than the delay: checked against the clock, before it starts.
        overrun = _overrun_need(d, checkpoint, not_after)
        if overrun is not None:
            needs.append(overrun)
    return needs


def unmet_before_run(d: Draft, checkpoint: str) -> list[HoldNeed]:
    """The holds to open now that `checkpoint` is about to run (again).

    The first time, every hold it needs. After those were released (a retry, after a rollback or
    a refused shift), only a conflict the packet has gained since: plan holds are released once,
    but the authoritative packet's conflict holds are released before every run.
    """
    needs = needs_before_run(d, checkpoint)
    if not d.checkpoint(checkpoint).cleared:
        return needs
    known = {
        h.reason
        for h in d.progress.holds.values()
        if h.checkpoint == checkpoint and h.source is HoldSource.CONFLICT
    }
    return [n for n in needs if n.source is HoldSource.CONFLICT and n.reason not in known]


def open_hold(d: Draft, need: HoldNeed, *, checkpoint: str | None, opened_by: str) -> HoldRecord:
    number = len(d.progress.holds) + 1
    record = HoldRecord(
        # Slashes, not colons: `rotate-api-key:plan:1` reads to redact as a secret key and value.
        id=f"{checkpoint or 'run'}/{need.source}/{number}",
        checkpoint=checkpoint,
        # Reasons are composed from ids and redacted fragments; the whole is redacted once more.
        reason=need.reason,
        source=need.source,
        release_by=need.release_by,
        mode=need.mode,
        opened_at=d.at,
        opened_by=opened_by,
    )
    d.progress = d.progress.with_hold(record)
    d.emit(OpenHold(hold=record))
    d.ledger(
        LedgerKind.HOLD_OPENED,
        actor=opened_by,
        payload={
            "hold": record.id,
            "checkpoint": checkpoint,
            "reason": record.reason,
            "source": str(record.source),
            "release_by": list(record.release_by),
            "mode": record.mode,
        },
    )
    return record


def has_open_hold(d: Draft, checkpoint: str | None, *sources: HoldSource) -> bool:
    return any(
        h.checkpoint == checkpoint and (not sources or h.source in sources) for h in d.progress.open_holds()
    )


def refuse_if_closed(progress: RunProgress, hold_id: str) -> None:
    """A closed hold is refused the same way in every run state: by whom and when it closed."""
    hold = progress.holds.get(hold_id)
    if hold is None or hold.is_open:
        return
    last = hold.releases[-1] if hold.releases else None
    who = f"by {last.user} as {last.role}" if last else "by the engine"
    when = hold.released_at.isoformat(timespec="minutes") if hold.released_at else "earlier"
    raise Refused(f"Hold {hold.id} was already released {who} at {when}.")


def release(d: Draft, hold_id: str, user: str, *, note: str = "") -> None:
    hold = d.progress.holds.get(hold_id)
    if hold is None:
        raise IllegalTransition(d.event, d.progress.state, f"there is no hold {hold_id}")
    refuse_if_closed(d.progress, hold_id)
    rule = ReleaseRule.of(hold)
    role = release_role(rule, d.roster, user=user, already=[(r.user, r.role) for r in hold.releases])
    primary = d.primary_of(role)
    entry = Release(user=user, role=role, at=d.at, acting_for=primary if primary != user else None)
    releases = (*hold.releases, entry)
    released_roles = {r.role for r in releases}
    complete = is_released(rule, [(r.user, r.role) for r in releases])
    payload = {
        "hold": hold.id,
        "checkpoint": hold.checkpoint,
        "source": str(hold.source),
        "reason": hold.reason,
        "mode": hold.mode,
        "user": user,
        "role": role,
        "acting_for": entry.acting_for,
        "releases": [r.as_json() for r in releases],
        **({"note": note} if note else {}),
    }
    if not complete:
        remaining = [r for r in hold.release_by if r not in released_roles]
        d.progress = d.progress.with_hold(replace(hold, releases=releases))
        d.ledger(LedgerKind.HOLD_RELEASE_RECORDED, actor=user, payload={**payload, "remaining": remaining})
        released = HoldReleased(
            hold={"id": hold.id, "checkpoint": hold.checkpoint},
            by=user,
            as_role=role,
            on_behalf_of=entry.acting_for,
            remaining=tuple(remaining),
        )
        d.notify(released, roles=remaining)
        return
    closed = replace(hold, releases=releases, released_at=d.at, state=HoldState.RELEASED)
    d.progress = d.progress.with_hold(closed)
    d.emit(
        CloseHold(hold_id=hold.id, by=tuple(r.user for r in releases), roles=tuple(r.role for r in releases))
    )
    d.ledger(LedgerKind.HOLD_RELEASED, actor=user, payload=payload)
    released = HoldReleased(
        hold={"id": hold.id, "checkpoint": hold.checkpoint},
        by=user,
        as_role=role,
        on_behalf_of=entry.acting_for,
        remaining=(),
    )
    d.notify(released, roles=hold.release_by)
    _unblock(d, hold.checkpoint)


def take_back(d: Draft, hold_id: str, user: str) -> None:
    """`user` takes back their own release of a hold still open: its role is needed again."""
    hold = d.progress.holds.get(hold_id)
    if hold is None:
        raise IllegalTransition(d.event, d.progress.state, f"there is no hold {hold_id}")
    refuse_if_closed(d.progress, hold_id)
    mine = [r for r in hold.releases if r.user == user]
    if not mine:
        raise Refused(f"You have not released {hold.id}, so there is no release of yours to take back.")
    releases = tuple(r for r in hold.releases if r.user != user)
    d.progress = d.progress.with_hold(replace(hold, releases=releases))
    remaining = [r for r in hold.release_by if r not in {x.role for x in releases}]
    d.ledger(
        LedgerKind.HOLD_RELEASE_WITHDRAWN,
        actor=user,
        payload={
            "hold": hold.id,
            "checkpoint": hold.checkpoint,
            "user": user,
            "role": mine[-1].role,
            "releases": [r.as_json() for r in releases],
            "remaining": remaining,
        },
    )
    d.tell_state(
        "release taken back",
        roles=hold.release_by,
        data={
            "by": user,
            "reason": f"{user} took back their release of {hold.id} as {mine[-1].role}",
            "needs": ", ".join(remaining),
        },
    )


def _unblock(d: Draft, checkpoint: str | None) -> None:
    """A held checkpoint with no hold left on it is ready again; its holds are not reopened."""
    if checkpoint is None or checkpoint not in d.progress.checkpoints:
        return
    if d.checkpoint(checkpoint).state is CheckpointState.HELD and not has_open_hold(d, checkpoint):
        d.update_checkpoint(checkpoint, state=CheckpointState.READY, cleared=True)


def releasers(d: Draft, checkpoint: str) -> tuple[str, ...]:
    """Everyone who released a hold on `checkpoint`, in release order."""
    users = [
        r.user
        for h in d.progress.holds.values()
        if h.checkpoint == checkpoint and h.state is HoldState.RELEASED
        for r in h.releases
    ]
    return tuple(dict.fromkeys(users))


def withdraw_all(d: Draft, *, actor: str, why: str) -> None:
    """The run ended: every open hold stops holding, recorded as withdrawn, never as released."""
    for hold in d.progress.open_holds():
        withdraw(d, hold, actor=actor, why=why)


def withdraw(d: Draft, hold: HoldRecord, *, actor: str, why: str) -> None:
    """One open hold stops holding because what it held for is over, recorded as withdrawn."""
    d.progress = d.progress.with_hold(replace(hold, state=HoldState.WITHDRAWN, released_at=d.at))
    d.emit(CloseHold(hold_id=hold.id, by=(actor,), roles=(), withdrawn=True))
    d.ledger(
        LedgerKind.HOLD_WITHDRAWN,
        actor=actor,
        payload={"hold": hold.id, "checkpoint": hold.checkpoint, "reason": hold.reason, "why": why},
    )
