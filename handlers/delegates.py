"""Switching the acting user of a role: only to an approved delegate, only by a delegate authority.

The switch is a pending change like a late report (packets.pending): while the packet carrying it
(the owners it changes) waits for adoption, the previous acting user still acts; adopted, the new
one acts; rejected, nothing changed. A switch no packet needs to carry (the role owns nothing still
to come) takes effect at once.
"""

from __future__ import annotations

from handlers.commands import ChangeDelegate
from handlers.context import RunContext, ledger, save
from handlers.deps import Deps
from handlers.flow import on_run
from handlers.outcome import Outcome
from handlers.proposals import propose
from packets.pending import ChangeKind


async def change_delegate(cmd: ChangeDelegate, deps: Deps) -> Outcome:
    async def body(ctx: RunContext) -> Outcome:
        before = ctx.roster.acting_user(cmd.role) if cmd.role in ctx.plan.roles else None
        # Checked against who acts now: the switcher's authority and the delegate's approval.
        ctx.roster.switch(
            by_user=cmd.user,
            role=cmd.role,
            to_user=cmd.to_user,
            change_roles=ctx.plan.authority.switchers_for(cmd.role),
        )
        change = ctx.report(
            kind=ChangeKind.DELEGATE, role=cmd.role, to_user=cmd.to_user, from_user=before, by=cmd.user
        )
        await ledger(
            ctx,
            actor=cmd.user,
            kind="acting_change_reported",
            payload={"role": cmd.role, "from": before, "to": cmd.to_user, "change": change.seq},
        )
        proposed = await propose(ctx, reason=f"{cmd.role} to be acted by {cmd.to_user}", by=cmd.user)
        await save(ctx)
        if proposed is None:
            return Outcome.done(
                f"{cmd.to_user} now acts for {cmd.role} (was {before}).",
                run=ctx.run,
                current_version=ctx.version,
            )
        packet, summary = proposed
        return Outcome.done(
            f"{cmd.to_user} will act for {cmd.role} once v{packet.version} is adopted; {before} acts "
            f"until then (#{change.seq}). v{packet.version} proposed: {summary}.",
            run=ctx.run,
            current_version=ctx.version,
            proposed=packet.version,
        )

    return await on_run(cmd.run, user=cmd.user, action=f"delegate {cmd.role}", deps=deps, body=body)
