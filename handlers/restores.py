"""Restore a cohort during hyper-care (`/cutover restore COHORT`), checked before moving.

The readings that must vouch for it (the hyper-care gates and the watched ones, the set a
hyper-care tick measures) are taken now, outside the run's transaction, for this restore; the
engine (`packets.engine.restore`) feeds them in as hyper-care readings, so a failing one takes its
action, and moves the cohort only if they all pass.
"""

from __future__ import annotations

from handlers.commands import RestoreCohort
from handlers.context import RunContext, load, save
from handlers.deps import Deps
from handlers.effects import apply
from handlers.flow import on_run
from handlers.gate_checks import measure_gate
from handlers.outcome import Outcome
from packets.engine import events as ev
from packets.engine.watch import watched
from packets.gates import GateResult


async def restore_cohort(cmd: RestoreCohort, deps: Deps) -> Outcome:
    async with deps.uow.transaction(read_only=True) as tx:
        peek = await load(tx, cmd.run, deps.clock.now())
    readings: tuple[GateResult, ...] = ()
    if peek is not None and peek.progress.in_hypercare:
        plan, progress = peek.plan, peek.progress
        gates = tuple(dict.fromkeys((*plan.hypercare_gates(), *watched(plan, progress))))
        telemetry = deps.telemetry_for(plan)
        at = deps.clock.now()
        readings = tuple([await measure_gate(plan, g, telemetry, at=at) for g in gates])

    async def body(ctx: RunContext) -> Outcome:
        before = ctx.progress.traffic.get(cmd.cohort, 0.0)
        await apply(ctx, ev.Restore(at=ctx.now, user=cmd.user, cohort=cmd.cohort, readings=readings), deps)
        await save(ctx)
        after = ctx.progress.traffic.get(cmd.cohort, 0.0)
        if after > before:
            return Outcome.done(
                f"{cmd.cohort} goes back to {after:g}% (from {before:g}%); hyper-care starts again.",
                run=ctx.run,
                current_version=ctx.version,
            )
        failing = [r.gate for r in readings if str(r.outcome) != "pass"]
        return Outcome.done(
            f"{cmd.cohort} stays at {before:g}%: not every gate passed a fresh check"
            + (f" (failing: {', '.join(failing)})" if failing else "")
            + f"; the run is {ctx.progress.state}.",
            run=ctx.run,
            current_version=ctx.version,
        )

    return await on_run(cmd.run, user=cmd.user, action=f"restore {cmd.cohort}", deps=deps, body=body)
