"""Use cases for holds: anyone acting for a plan role may stop the line; only release roles lift it."""

from __future__ import annotations

from handlers.commands import OpenHold, ReleaseHold, WithdrawRelease
from handlers.context import RunContext, save
from handlers.deps import Deps
from handlers.effects import apply
from handlers.flow import on_run
from handlers.outcome import Outcome
from packets.authority import Refused, ReleaseRule, release_role
from packets.engine import events as ev
from packets.engine.progress import HoldRecord
from packets.text import inert


async def open_hold(cmd: OpenHold, deps: Deps) -> Outcome:
    reason = cmd.reason.strip()

    async def body(ctx: RunContext) -> Outcome:
        if not reason:
            raise Refused("A hold needs a reason.")
        before = set(ctx.progress.holds)
        await apply(ctx, ev.HoldOpened(at=ctx.now, user=cmd.user, reason=reason), deps)
        await save(ctx)
        opened = [h for h in ctx.progress.holds if h not in before]
        hold = opened[0] if opened else "?"
        return Outcome.done(
            f"Hold {hold} opened: {inert(reason)}", run=ctx.run, current_version=ctx.version, hold=hold
        )

    return await on_run(cmd.run, user=cmd.user, action="open hold", deps=deps, body=body)


def find_hold(ctx: RunContext, ref: str, *, user: str | None = None) -> HoldRecord:
    """A hold by id, or a checkpoint's hold: the newest open one `user` may release, else the
    newest open one (the engine says why not), else the newest closed one."""
    if ref in ctx.progress.holds:
        return ctx.progress.holds[ref]
    on_checkpoint = [h for h in ctx.progress.holds.values() if h.checkpoint == ref]
    if not on_checkpoint:
        open_ids = ", ".join(h.id for h in ctx.progress.open_holds()) or "none"
        raise Refused(f"There is no hold '{inert(ref)}' (open holds: {open_ids}).")
    on_checkpoint.sort(key=lambda h: (h.is_open, h.opened_at))
    if user is not None:
        mine = [h for h in on_checkpoint if h.is_open and _may_release(ctx, h, user)]
        if mine:
            return mine[-1]
    return on_checkpoint[-1]


def _may_release(ctx: RunContext, hold: HoldRecord, user: str) -> bool:
    try:
        release_role(
            ReleaseRule.of(hold), ctx.roster, user=user, already=[(r.user, r.role) for r in hold.releases]
        )
    except Refused:
        return False
    return True


async def release_hold(cmd: ReleaseHold, deps: Deps) -> Outcome:
    async def body(ctx: RunContext) -> Outcome:
        # A packet card's button is rendered for its version and goes stale with it; the hold's
        # own message has a button bound to the hold alone (no version), so an adoption does not
        # invalidate it: who may release, and whether it is still open, the engine checks.
        if cmd.version is not None and cmd.version != ctx.version:
            raise Refused(
                f"That button was for packet v{cmd.version}; v{ctx.version} is current. "
                "Use the Release button on the hold's own message, or the current packet."
            )
        hold = find_hold(ctx, cmd.hold, user=cmd.user)
        # Who may release, and whether it is still open, is the engine's to say (packets.authority).
        await apply(ctx, ev.HoldReleased(at=ctx.now, hold_id=hold.id, user=cmd.user, note=cmd.note), deps)
        await save(ctx)
        after = ctx.progress.holds[hold.id]
        mine = next((r for r in reversed(after.releases) if r.user == cmd.user), None)
        role = mine.role if mine else "?"
        if after.is_open:
            remaining = [r for r in after.release_by if r not in {x.role for x in after.releases}]
            return Outcome.done(
                f"Released {hold.id} as {role}; still needs {', '.join(remaining)}.",
                run=ctx.run,
                current_version=ctx.version,
                hold=hold.id,
                role=role,
            )
        return Outcome.done(
            f"Released {hold.id} as {role}; the run is {ctx.progress.state}.",
            run=ctx.run,
            current_version=ctx.version,
            hold=hold.id,
            role=role,
        )

    return await on_run(cmd.run, user=cmd.user, action=f"release {cmd.hold}", deps=deps, body=body)


async def withdraw_release(cmd: WithdrawRelease, deps: Deps) -> Outcome:
    async def body(ctx: RunContext) -> Outcome:
        # By checkpoint: the newest open hold there that this person has released.
        hold = find_hold(ctx, cmd.hold)
        if hold.id != cmd.hold:
            mine = [
                h
                for h in ctx.progress.open_holds()
                if h.checkpoint == cmd.hold and any(r.user == cmd.user for r in h.releases)
            ]
            hold = mine[-1] if mine else hold
        await apply(ctx, ev.ReleaseWithdrawn(at=ctx.now, hold_id=hold.id, user=cmd.user), deps)
        await save(ctx)
        after = ctx.progress.holds[hold.id]
        needs = [r for r in after.release_by if r not in {x.role for x in after.releases}]
        return Outcome.done(
            f"Took back your release of {hold.id}; it still needs {', '.join(needs)}.",
            run=ctx.run,
            current_version=ctx.version,
            hold=hold.id,
        )

    return await on_run(cmd.run, user=cmd.user, action=f"unrelease {cmd.hold}", deps=deps, body=body)
