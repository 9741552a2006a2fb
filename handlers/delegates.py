"""Switching the acting user of a role: only to an approved delegate, only by a delegate authority.

The switch takes effect at once for authority (the new acting user may release holds now), and
the timeline's owners change through a proposed packet like any other change of facts.
"""

from __future__ import annotations

from handlers.commands import ChangeDelegate
from handlers.context import RunContext, ledger, save
from handlers.deps import Deps
from handlers.flow import on_run
from handlers.outcome import Outcome
from handlers.proposals import propose


async def change_delegate(cmd: ChangeDelegate, deps: Deps) -> Outcome:
    async def body(ctx: RunContext) -> Outcome:
        before = ctx.roster.acting_user(cmd.role) if cmd.role in ctx.plan.roles else None
        roster = ctx.roster.switch(
            by_user=cmd.user,
            role=cmd.role,
            to_user=cmd.to_user,
            change_roles=ctx.plan.authority.switchers_for(cmd.role),
        )
        ctx.acting = roster.acting_map()
        await ledger(
            ctx,
            actor=cmd.user,
            kind="acting_changed",
            payload={"role": cmd.role, "from": before, "to": cmd.to_user},
        )
        proposed = await propose(
            ctx, ctx.working_facts, reason=f"{cmd.role} now acted by {cmd.to_user}", by=cmd.user
        )
        await save(ctx)
        tail = f" v{proposed[0].version} proposed: {proposed[1]}." if proposed else ""
        return Outcome.done(
            f"{cmd.to_user} now acts for {cmd.role} (was {before}).{tail}",
            run=ctx.run,
            current_version=ctx.version,
        )

    return await on_run(cmd.run, user=cmd.user, action=f"delegate {cmd.role}", deps=deps, body=body)
