"""Use cases that change the facts a timeline is built from: late reports, windows, done checkpoints.

A changed fact produces a *proposed* packet; nothing the engine follows changes until the release
authority adopts it (handlers.adoption). The channel hears one short line with Adopt and Reject;
the people affected hear by DM only once the version is adopted.
"""

from __future__ import annotations

from handlers.commands import ChangeWindow, ReportDone, ReportLate
from handlers.context import RunContext, ledger, save
from handlers.deps import Deps
from handlers.effects import apply
from handlers.flow import on_run
from handlers.outcome import Outcome
from handlers.proposals import propose
from packets.authority import Refused
from packets.durations import resolve_time
from packets.engine import events as ev
from packets.engine.progress import CheckpointState
from packets.packet import Packet
from packets.pending import ChangeKind
from packets.plan import CheckpointWindow
from packets.text import inert


def _require_checkpoint(ctx: RunContext, checkpoint: str) -> None:
    if not ctx.packet.has(checkpoint):
        known = ", ".join(c.id for c in ctx.packet.timeline[:12])
        raise Refused(f"There is no checkpoint '{inert(checkpoint)}' (checkpoints: {known}).")


def _require_owner_or(ctx: RunContext, user: str, checkpoint: str, roles: list[str]) -> None:
    owner = ctx.packet.checkpoint(checkpoint).owner_role
    roster = ctx.roster
    if roster.may_act(user, owner) or any(roster.may_act(user, r) for r in roles):
        return
    raise Refused(
        f"{user} does not act for {owner} (acting: {roster.acting_user(owner)}) or for {', '.join(roles)}."
    )


def _answer(ctx: RunContext, proposed: tuple[Packet, str] | None, what: str) -> Outcome:
    if proposed is None:
        return Outcome.done(
            f"{what}; no material change to the timeline, so no new version.",
            run=ctx.run,
            current_version=ctx.version,
        )
    packet, summary = proposed
    return Outcome.done(
        f"{what}. v{packet.version} proposed: {summary}. It takes effect once adopted.",
        run=ctx.run,
        current_version=ctx.version,
        proposed=packet.version,
    )


async def report_late(cmd: ReportLate, deps: Deps) -> Outcome:
    """One transaction: the typed time is resolved against the plan window of the locked run."""

    async def body(ctx: RunContext) -> Outcome:
        until = resolve_time(cmd.until, now=ctx.now, tz_of=ctx.plan.window.start)
        _require_checkpoint(ctx, cmd.checkpoint)
        _require_owner_or(ctx, cmd.user, cmd.checkpoint, ctx.plan.authority.start_and_rollback)
        state = ctx.progress.checkpoints[cmd.checkpoint].state
        if state == CheckpointState.DONE:
            raise Refused(f"{cmd.checkpoint} is already done.")
        if until <= ctx.now:
            raise Refused(f"{ctx.local_time(until)} has already passed.")
        note = cmd.reason
        reason = f"{cmd.checkpoint} late until {ctx.local_time(until)}" + (f": {note}" if note else "")
        await ledger(
            ctx,
            actor=cmd.user,
            kind="late_reported",
            payload={"checkpoint": cmd.checkpoint, "until": until.isoformat(), "reason": note},
        )
        change = ctx.report(kind=ChangeKind.LATE, checkpoint=cmd.checkpoint, until=until, by=cmd.user)
        proposed = await propose(ctx, reason=reason, by=cmd.user)
        await save(ctx)
        what = f"Recorded {cmd.checkpoint} late until {ctx.local_time(until)} (#{change.seq})"
        return _answer(ctx, proposed, what)

    return await on_run(cmd.run, user=cmd.user, action=f"late {cmd.checkpoint}", deps=deps, body=body)


async def change_window(cmd: ChangeWindow, deps: Deps) -> Outcome:
    async def body(ctx: RunContext) -> Outcome:
        not_before = resolve_time(cmd.not_before, now=ctx.now, tz_of=ctx.plan.window.start)
        not_after = resolve_time(cmd.not_after, now=not_before, tz_of=ctx.plan.window.start)
        _require_checkpoint(ctx, cmd.checkpoint)
        _require_owner_or(ctx, cmd.user, cmd.checkpoint, ctx.plan.authority.adopt_packets)
        if not_after <= not_before:
            raise Refused("The window must close after it opens.")
        window = CheckpointWindow(not_before=not_before, not_after=not_after)
        span = f"{ctx.local_time(not_before)}-{ctx.local_time(not_after)}"
        await ledger(
            ctx,
            actor=cmd.user,
            kind="window_changed",
            payload={
                "checkpoint": cmd.checkpoint,
                "not_before": not_before.isoformat(),
                "not_after": not_after.isoformat(),
            },
        )
        reason = f"{cmd.checkpoint} window now {span}"
        change = ctx.report(kind=ChangeKind.WINDOW, checkpoint=cmd.checkpoint, window=window, by=cmd.user)
        proposed = await propose(ctx, reason=reason, by=cmd.user)
        await save(ctx)
        return _answer(ctx, proposed, f"Recorded the {cmd.checkpoint} window {span} (#{change.seq})")

    return await on_run(cmd.run, user=cmd.user, action=f"window {cmd.checkpoint}", deps=deps, body=body)


async def report_done(cmd: ReportDone, deps: Deps) -> Outcome:
    async def body(ctx: RunContext) -> Outcome:
        _require_checkpoint(ctx, cmd.checkpoint)
        await apply(ctx, ev.CheckpointDone(at=ctx.now, checkpoint=cmd.checkpoint, user=cmd.user), deps)
        ctx.record_fact(lambda facts: facts.mark_done(cmd.checkpoint, ctx.now))
        await save(ctx)
        return Outcome.done(
            f"{cmd.checkpoint} done at {ctx.local_time(ctx.now)}; the run is {ctx.progress.state}.",
            run=ctx.run,
            current_version=ctx.version,
        )

    return await on_run(cmd.run, user=cmd.user, action=f"done {cmd.checkpoint}", deps=deps, body=body)
