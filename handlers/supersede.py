"""Supersession: a rebuilt artifact or a changed cohort ends the run and opens the new revision.

The old run ends `superseded` (the engine's abort, so only while no traffic is on the new path,
by a start-and-rollback role) and names its successor; the new run names the run it replaces and
carries no sign-off. Both happen in one transaction, so the channel never has two active runs
and never none. The old revision can no longer be opened (`handlers.runs.superseded_refusal`).
"""

from __future__ import annotations

from handlers.commands import Supersede
from handlers.context import RunContext, plan_from_text, save
from handlers.deps import Deps
from handlers.effects import apply
from handlers.flow import on_run
from handlers.outcome import Outcome
from handlers.runs import create_run, run_id_for
from packets.authority import Refused
from packets.engine import events as ev
from packets.plan import PlanInvalid


async def supersede(cmd: Supersede, deps: Deps) -> Outcome:
    created: list[str] = []

    async def body(ctx: RunContext) -> Outcome:
        if cmd.plan_text is None:
            raise Refused(f"No plan named '{cmd.source}' in the plans directory.")
        try:
            new_plan = plan_from_text(cmd.plan_text, cmd.source)
        except PlanInvalid as invalid:
            lines = "\n".join(invalid.lines()[:10])
            raise Refused(f"The new plan is refused:\n{lines}") from None
        old = ctx.plan
        if new_plan.plan != old.plan or new_plan.channel != old.channel:
            raise Refused(
                f"A run is superseded by a newer revision of the same plan in the same channel; "
                f"{cmd.source} is plan '{new_plan.plan}' for <#{new_plan.channel}>."
            )
        if new_plan.revision == old.revision:
            raise Refused(f"{cmd.source} is the revision this run already runs ({old.revision[:12]}).")
        if new_plan.bundle is None or (
            old.bundle is not None and new_plan.bundle.digest == old.bundle.digest
        ):
            raise Refused(
                "The bundle is unchanged: supersede a run when an artifact was rebuilt or a cohort "
                "changed; for other changes report them (late, window, delegate) instead."
            )
        reason = cmd.reason.strip()
        if not reason:
            raise Refused("Say why the run is superseded (the rebuilt artifact, the changed cohort).")
        successor = run_id_for(new_plan, ctx.now)
        if successor == ctx.run:
            raise Refused("A run was opened this very second; supersede it a second later.")
        await apply(ctx, ev.Abort(at=ctx.now, user=cmd.user, reason=reason, superseded_by=successor), deps)
        await save(ctx)
        run = await create_run(
            ctx.tx,
            plan=new_plan,
            text=cmd.plan_text,
            source=cmd.source,
            user=cmd.user,
            now=ctx.now,
            supersedes=ctx.run,
        )
        created.append(run)
        return Outcome.done(
            f"Run {ctx.run} is superseded by run {run} (revision {new_plan.revision[:12]}): {reason}. "
            f"The new revision waits for sign-off by {', '.join(new_plan.authority.signoff)}.",
            run=run,
            current_version=1,
            revision=new_plan.revision,
        )

    outcome = await on_run(cmd.run, user=cmd.user, action="supersede", deps=deps, body=body)
    for run in created:
        deps.on_change(run)
    return outcome
