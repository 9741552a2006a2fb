"""One scheduled tick for one run: measure the gates that matter now, record, let the engine act.

Measuring happens outside any transaction (telemetry can be slow); recording and acting happen in
the run's locked transaction. Each reading is recorded under the unique key
`(run, checkpoint, gate, slot)`: when two replicas tick the same slot, the second finds the slot
taken and feeds nothing to the engine, so no slot is ever acted on twice.

During the stages the gates of the checkpoint in flight are measured, one slot per
`gate_policy.interval` since the window start. During hyper-care (the run in `hypercare`, or
paused, held or frozen during it) the plan's hyper-care gates are measured under the
pseudo-checkpoint `hypercare`, one slot per interval of the cadence step in force, numbered
across steps (`packets.engine.hypercare.slot_now`: a breach may restart or extend the cadence,
and a step's `between` hours leave nothing due outside them); the results go to the engine like
any checkpoint's, so a failure takes its gate's action. From the first traffic shift the watched gates
(`packets.engine.watch`) are measured too, in every state that checks: with the checkpoint in
flight, with hyper-care, or on their own under the pseudo-checkpoint `watch` (a hold, a pause, a
freeze, a manual step). Once the last cadence step ran out nothing is measured, and the
next tick completes the run.

`next_interval` says how often the scheduler should tick a run now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from handlers.commands import Advance, CheckGates
from handlers.context import RunContext, load, save
from handlers.deps import Deps
from handlers.effects import apply
from handlers.flow import on_run
from handlers.outcome import Outcome
from handlers.ports import Measurement, Telemetry
from packets.engine import events as ev
from packets.engine import hypercare
from packets.engine.progress import IN_FLIGHT, TERMINAL, RunProgress, RunState
from packets.engine.watch import WATCH, watched
from packets.gates import GateResult, GateSpec, evaluate
from packets.gates import Outcome as GateOutcome
from packets.plan import HYPERCARE_CHECKPOINT, Plan

HYPERCARE = HYPERCARE_CHECKPOINT

# The states in which gate checks are measured (the stages' stops included).
_CHECKED: frozenset[RunState] = frozenset(
    {RunState.RUNNING, RunState.HYPERCARE, RunState.PAUSED, RunState.HELD, RunState.FROZEN}
)
# The states a tick without measurements may move on.
_ADVANCING: frozenset[RunState] = frozenset({RunState.RUNNING, RunState.HYPERCARE})


@dataclass(frozen=True, slots=True)
class Due:
    """What this tick measures: the gates of one checkpoint (or of hyper-care), each in its slot.

    During the stages each gate has its own interval (`Plan.gate_policy_of`), so its own slots;
    during hyper-care every gate shares the cadence step's slot.
    """

    checkpoint: str
    slots: tuple[tuple[str, int], ...]

    @property
    def gates(self) -> tuple[str, ...]:
        return tuple(g for g, _ in self.slots)

    def slot_of(self, gate: str) -> int:
        return dict(self.slots)[gate]

    def only(self, gates: Iterable[str]) -> Due:
        keep = set(gates)
        return Due(checkpoint=self.checkpoint, slots=tuple((g, s) for g, s in self.slots if g in keep))


def next_interval(plan: Plan, progress: RunProgress, now: datetime) -> timedelta | None:
    """How often to tick the run from `now`: None once it ended (nothing is ever due again).

    During hyper-care, the interval of the cadence step in force, so the ticks widen with it;
    before it, and once hyper-care ran out (one more tick completes the run, or it waits for a
    person to release it), the plan's `gate_policy.interval`.
    """
    if progress.state in TERMINAL:
        return None
    if progress.hypercare_since is not None:
        step = hypercare.step_now(plan, progress, now)
        if step is not None:
            return step[1].every
    return min(plan.gate_intervals())


def due_now(ctx: RunContext, *, business_hours: bool = True) -> tuple[Due, ...]:
    """What this tick measures: one `Due` per checkpoint in flight with gates of its own (branches
    side by side each have theirs), the watched gates with the first; else hyper-care's or the
    watch's alone; nothing when the run is in no state that checks. `business_hours=False`: as if
    every cadence step were in its hours (a pushed alert counts whenever hyper-care lasts)."""
    plan, progress, now = ctx.plan, ctx.progress, ctx.now
    if progress.state not in _CHECKED:
        return ()
    watching = watched(plan, progress)
    if progress.hypercare_since is not None:
        slot = hypercare.slot_now(plan, progress, now, business_hours=business_hours)
        if slot is None:
            return ()  # outside the step's hours, or hyper-care ran out: the next tick completes the run
        gates = tuple(dict.fromkeys((*plan.hypercare_gates(), *watching)))
        return (Due(checkpoint=HYPERCARE, slots=tuple((g, slot) for g in gates)),)
    elapsed = now - plan.window.start

    def slots(gates: Iterable[str]) -> tuple[tuple[str, int], ...]:
        return tuple((g, int(elapsed // plan.gate_policy_of(g).interval)) for g in dict.fromkeys(gates))

    gated = [
        c
        for c in progress.flights(c.id for c in ctx.packet.timeline)
        if plan.checkpoint(c).gates and progress.checkpoints[c].state in IN_FLIGHT
    ]
    if gated:
        first, *beside = gated
        return (
            Due(checkpoint=first, slots=slots((*plan.checkpoint(first).gates, *watching))),
            *(Due(checkpoint=c, slots=slots(plan.checkpoint(c).gates)) for c in beside),
        )
    if watching:
        # Nothing with gates of its own is in flight (a hold, a manual step), but traffic is live.
        return (Due(checkpoint=WATCH, slots=slots(watching)),)
    return ()


async def _not_yet_measured(ctx: RunContext, due: Due) -> Due:
    """The gates of `due` whose slot is not recorded yet. The scheduler ticks at the shortest gate
    interval; a gate with a longer one is measured only when its own slot comes round."""
    shortest = min(ctx.plan.gate_intervals())
    keep = []
    for gate, slot in due.slots:
        if due.checkpoint == HYPERCARE or ctx.plan.gate_policy_of(gate).interval <= shortest:
            keep.append(gate)
            continue
        latest = await ctx.tx.gate_results.latest(ctx.run, due.checkpoint, gate, limit=1)
        if not latest or latest[0].slot != slot:
            keep.append(gate)
    return due.only(keep)


async def _measure(plan: Plan, due: Due, deps: Deps, at: datetime) -> tuple[GateResult, ...]:
    telemetry = deps.telemetry_for(plan)

    return tuple(await asyncio.gather(*(measure_gate(plan, g, telemetry, at=at) for g in due.gates)))


async def measure_gate(plan: Plan, gate: str, telemetry: Telemetry, *, at: datetime) -> GateResult:
    """One reading of one gate, with its baseline read for the same instant when it has one."""
    spec = plan.gates[gate]
    base: Measurement | None = None
    if spec.baseline is None:
        reading = await telemetry.measure(gate=gate, query=spec.query, at=at)
    else:
        reading, base = await asyncio.gather(
            telemetry.measure(gate=gate, query=spec.query, at=at),
            telemetry.measure(gate=plan.baseline_series(gate), query=spec.baseline, at=at),
        )
    return evaluate(
        reading.value,
        GateSpec.parse(spec.pass_),
        plan.gate_policy_of(gate).no_data,
        gate=gate,
        at=at,
        why_missing=reading.reason,
        baseline=base.value if base is not None else None,
        baseline_missing=base.reason if base is not None else "",
    )


async def check_gates(cmd: CheckGates, deps: Deps) -> Outcome:
    """Measure what is due for the run now, record it once per slot, and let the engine act."""
    async with deps.uow.transaction(read_only=True) as tx:
        peek = await load(tx, cmd.run, deps.clock.now())
        plan = peek.plan if peek is not None else None
        dues: list[Due] = []
        if peek is not None:
            for due in due_now(peek):
                left = await _not_yet_measured(peek, due)
                if left.slots:
                    dues.append(left)
    if not dues or plan is None:
        return await advance(Advance(run=cmd.run), deps)
    at = deps.clock.now()
    measured = await asyncio.gather(*(_measure(plan, due, deps, at) for due in dues))

    async def body(ctx: RunContext) -> Outcome:
        current = {d.checkpoint: d for d in due_now(ctx)}
        checked: list[tuple[str, list[GateResult]]] = []
        for due, results in zip(dues, measured, strict=True):
            again = current.get(due.checkpoint)
            if again is None or not set(due.slots) <= set(again.slots):
                continue  # the run moved on while measuring
            fresh = await _record(ctx, due, results)
            if fresh:
                await apply(ctx, ev.GateResults(at=ctx.now, checkpoint=due.checkpoint, results=fresh), deps)
                checked.append((due.checkpoint, list(fresh)))
        if not checked:
            moved = not any(d.checkpoint in current for d in dues)
            slots = ", ".join(str(s) for s in sorted({s for d in dues for _, s in d.slots}))
            return Outcome.done(
                "The run moved on while measuring; nothing recorded."
                if moved
                else f"Slot {slots} was already checked.",
                run=ctx.run,
                current_version=ctx.version,
            )
        await apply(ctx, ev.Tick(at=ctx.now), deps)
        await save(ctx)
        failing = [r.gate for _, fresh in checked for r in fresh if r.outcome != GateOutcome.PASS]
        counted = "; ".join(f"{len(fresh)} gates checked for {checkpoint}" for checkpoint, fresh in checked)
        return Outcome.done(
            counted + (f"; failing: {', '.join(failing)}" if failing else ""),
            run=ctx.run,
            current_version=ctx.version,
            results=[r.as_json() for _, fresh in checked for r in fresh],
        )

    return await on_run(cmd.run, user="scheduler", action="check gates", deps=deps, body=body)


async def _record(ctx: RunContext, due: Due, results: tuple[GateResult, ...]) -> tuple[GateResult, ...]:
    """Record each reading in its slot; the ones recorded now (a slot taken already is skipped)."""
    fresh = []
    for result in results:
        recorded = await ctx.tx.gate_results.record(
            run_id=ctx.run,
            checkpoint=due.checkpoint,
            gate=result.gate,
            slot=due.slot_of(result.gate),
            outcome=str(result.outcome),
            value=result.value,
            reason=result.reason,
            at=ctx.now,
            packet_version=ctx.version,
        )
        if recorded:
            fresh.append(result)
    return tuple(fresh)


async def advance(cmd: Advance, deps: Deps) -> Outcome:
    """A tick without measurements: soak timers elapse, waiting checkpoints start, hyper-care ends."""

    async def body(ctx: RunContext) -> Outcome:
        if ctx.progress.state not in _ADVANCING:
            return Outcome.done(
                f"The run is {ctx.progress.state}; nothing to advance.",
                run=ctx.run,
                current_version=ctx.version,
            )
        await apply(ctx, ev.Tick(at=ctx.now), deps)
        await save(ctx)
        return Outcome.done(f"The run is {ctx.progress.state}.", run=ctx.run, current_version=ctx.version)

    return await on_run(cmd.run, user="scheduler", action="tick", deps=deps, body=body)
