"""One scheduled tick for one run: measure the gates that matter now, record, let the engine act.

Measuring happens outside any transaction (telemetry can be slow); recording and acting happen in
the run's locked transaction. Each reading is recorded under the unique key
`(run, checkpoint, gate, slot)`: when two replicas tick the same slot, the second finds the slot
taken and feeds nothing to the engine, so no slot is ever acted on twice.

Hyper-care: after the run completed, the plan's hyper-care gates are checked on its widening
cadence. The cutover is over then, so the bot moves no traffic on its own: a failure is recorded,
alerted in the channel with the gate's action from the rollback matrix, and sent by DM to the
acting owners of the traffic checkpoints and the release authority, who decide.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from handlers.commands import Advance, CheckGates
from handlers.context import RunContext, enqueue, ledger, load, save
from handlers.deps import Deps
from handlers.effects import apply
from handlers.flow import on_run
from handlers.notices import Notice
from handlers.outcome import Outcome
from packets import events as ev
from packets.gates import GateResult, GateSpec, evaluate
from packets.gates import Outcome as GateOutcome
from packets.plan import Plan
from packets.run_progress import IN_FLIGHT, RunState

HYPERCARE = "hypercare"


@dataclass(frozen=True, slots=True)
class Due:
    """What this tick measures: the gates of one checkpoint (or of hyper-care) in one slot."""

    checkpoint: str
    gates: tuple[str, ...]
    slot: int


def hypercare_step(plan: Plan, completed_at: datetime, now: datetime) -> tuple[int, timedelta] | None:
    """The cadence step in force at `now` (index, interval), or None when hyper-care is over."""
    if plan.hypercare is None:
        return None
    elapsed = now - completed_at
    for index, step in enumerate(plan.hypercare.cadence):
        if elapsed < step.until:
            return index, step.every
    return None


def due_now(ctx: RunContext) -> Due | None:
    plan, progress, now = ctx.plan, ctx.progress, ctx.now
    if progress.state == RunState.COMPLETED and progress.ended_at is not None and plan.hypercare:
        step = hypercare_step(plan, progress.ended_at, now)
        if step is None:
            return None
        index, every = step
        gates = tuple(plan.hypercare.gates) or tuple(plan.gates)
        # Slots of different cadence steps never collide: the step index is the high part.
        slot = index * 10_000_000 + int((now - progress.ended_at) // every)
        return Due(checkpoint=HYPERCARE, gates=gates, slot=slot)
    if progress.state not in (RunState.RUNNING, RunState.PAUSED, RunState.HELD, RunState.FROZEN):
        return None
    current = progress.in_flight(c.id for c in ctx.packet.timeline)
    if current is None or progress.checkpoints[current].state not in IN_FLIGHT:
        return None
    gates = tuple(plan.checkpoint(current).gates)
    if not gates:
        return None
    slot = int((now - plan.window.start) // plan.gate_policy.interval)
    return Due(checkpoint=current, gates=gates, slot=slot)


async def _measure(plan: Plan, due: Due, deps: Deps, at: datetime) -> tuple[GateResult, ...]:
    telemetry = deps.telemetry_for(plan)

    async def one(gate: str) -> GateResult:
        spec = plan.gates[gate]
        reading = await telemetry.measure(gate=gate, query=spec.query, at=at)
        return evaluate(
            reading.value,
            GateSpec.parse(spec.pass_),
            plan.gate_policy.no_data,
            gate=gate,
            at=at,
            why_missing=reading.reason,
        )

    return tuple(await asyncio.gather(*(one(g) for g in due.gates)))


async def check_gates(cmd: CheckGates, deps: Deps) -> Outcome:
    """Measure what is due for the run now, record it once per slot, and let the engine act."""
    async with deps.uow.transaction(read_only=True) as tx:
        peek = await load(tx, cmd.run, deps.clock.now())
        due = due_now(peek) if peek is not None else None
        plan = peek.plan if peek is not None else None
    if due is None or plan is None:
        return await advance(Advance(run=cmd.run), deps)
    results = await _measure(plan, due, deps, deps.clock.now())

    async def body(ctx: RunContext) -> Outcome:
        again = due_now(ctx)
        if again is None or again.checkpoint != due.checkpoint:
            return Outcome.done("The run moved on while measuring; nothing recorded.", run=ctx.run)
        fresh = []
        for result in results:
            recorded = await ctx.tx.gate_results.record(
                run_id=ctx.run,
                checkpoint=due.checkpoint,
                gate=result.gate,
                slot=due.slot,
                outcome=str(result.outcome),
                value=result.value,
                reason=result.reason,
                at=ctx.now,
                packet_version=ctx.version,
            )
            if recorded:
                fresh.append(result)
        if not fresh:
            return Outcome.done(
                f"Slot {due.slot} was already checked.", run=ctx.run, current_version=ctx.version
            )
        if due.checkpoint == HYPERCARE:
            await _hypercare(ctx, tuple(fresh))
        else:
            await apply(
                ctx, ev.GateResults(at=ctx.now, checkpoint=due.checkpoint, results=tuple(fresh)), deps
            )
            await apply(ctx, ev.Tick(at=ctx.now), deps)
        await save(ctx)
        failing = [r.gate for r in fresh if r.outcome != GateOutcome.PASS]
        return Outcome.done(
            f"{len(fresh)} gates checked for {due.checkpoint}"
            + (f"; failing: {', '.join(failing)}" if failing else ""),
            run=ctx.run,
            current_version=ctx.version,
            results=[r.as_json() for r in fresh],
        )

    return await on_run(cmd.run, user="scheduler", action="check gates", deps=deps, body=body)


async def _hypercare(ctx: RunContext, results: tuple[GateResult, ...]) -> None:
    for result in results:
        if result.outcome == GateOutcome.PASS or (
            result.outcome == GateOutcome.NO_DATA and ctx.plan.gate_policy.no_data != "fail"
        ):
            continue
        gate = ctx.plan.gates[result.gate]
        alert = {
            "checkpoint": HYPERCARE,
            "gate": result.gate,
            "value": result.value,
            "threshold": gate.pass_,
            "outcome": "no_data" if result.outcome == GateOutcome.NO_DATA else "fail",
            "action": gate.on_fail,
            "reason": result.reason,
            "at": ctx.now.isoformat(),
        }
        await ledger(ctx, actor=f"gate:{result.gate}", kind="hypercare_gate_failed", payload=alert)
        await enqueue(ctx, kind=Notice.GATE_ALERT, recipient=ctx.plan.channel, payload=alert)
        owners = {c.owner_user for c in ctx.packet.timeline if ctx.plan.checkpoint(c.id).traffic is not None}
        owners |= {ctx.roster.acting_user(r) for r in ctx.plan.authority.adopt_packets}
        for user in sorted(owners):
            await enqueue(ctx, kind=Notice.GATE_ALERT, recipient=user, payload=alert)


async def advance(cmd: Advance, deps: Deps) -> Outcome:
    """A tick without measurements: soak timers elapse, waiting checkpoints start."""

    async def body(ctx: RunContext) -> Outcome:
        if ctx.progress.state != RunState.RUNNING:
            return Outcome.done(
                f"The run is {ctx.progress.state}; nothing to advance.",
                run=ctx.run,
                current_version=ctx.version,
            )
        await apply(ctx, ev.Tick(at=ctx.now), deps)
        await save(ctx)
        return Outcome.done(f"The run is {ctx.progress.state}.", run=ctx.run, current_version=ctx.version)

    return await on_run(cmd.run, user="scheduler", action="tick", deps=deps, body=body)
