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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from handlers.commands import Advance, CheckGates
from handlers.context import RunContext, load, load_many, save
from handlers.deps import Deps
from handlers.effects import apply
from handlers.flow import on_run, settle, told
from handlers.outcome import Outcome
from handlers.ports import Measurement, Telemetry
from packets.engine import events as ev
from packets.engine import hypercare
from packets.engine.progress import IN_FLIGHT, TERMINAL, RunProgress, RunState
from packets.engine.watch import WATCH, watched
from packets.gates import GateResult, GateSpec, evaluate
from packets.gates import Outcome as GateOutcome
from packets.plan import HYPERCARE_CHECKPOINT, Plan
from store.gate_results import GateReading

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
        dues = await _left_to_measure(peek) if peek is not None else []
    if not dues or peek is None:
        return await advance(Advance(run=cmd.run), deps)
    at = deps.clock.now()
    measured = await _measure_all(peek.plan, dues, deps, at)

    async def body(ctx: RunContext) -> Outcome:
        still = _still_due(ctx, dues, measured)
        recorded = await ctx.tx.gate_results.record_readings(
            [reading for due, results in still for reading in _readings(ctx, due, results)], at=ctx.now
        )
        return await _act(ctx, dues, still, recorded, deps)

    return await on_run(cmd.run, user="scheduler", action="check gates", deps=deps, body=body)


async def check_gates_together(runs: Sequence[str], deps: Deps) -> dict[str, Outcome]:
    """`check_gates` for many runs at one instant, in one read, one round of measuring and one
    write transaction (each statement covering every run where it can): what a tick of hundreds
    of runs costs is then mostly the engine's own work. Only runs with something to measure are
    ticked here; the outcomes are theirs, by run. A run left out (nothing due, or gone) is ticked
    alone with `check_gates`. Raises if anything fails, having changed nothing: then every run is
    ticked alone, where a refusal is ledgered run by run."""
    now = deps.clock.now()
    async with deps.uow.transaction(read_only=True) as tx:
        peeks = await load_many(tx, runs, now)
        planned = {run: dues for run, peek in peeks.items() if (dues := await _left_to_measure(peek))}
    if not planned:
        return {}
    measured = dict(
        zip(
            planned,
            await asyncio.gather(*(_measure_all(peeks[r].plan, planned[r], deps, now) for r in planned)),
            strict=True,
        )
    )
    done: dict[str, tuple[Outcome, bool]] = {}
    async with deps.uow.transaction(runs=list(planned)) as tx:
        # Every run here is locked by this transaction: its saves can wait for one statement.
        tx.runs.defer_saves()
        contexts = await load_many(tx, list(planned), now)
        await tx.packets.read_latest(list(contexts))
        still = {run: _still_due(ctx, planned[run], measured[run]) for run, ctx in contexts.items()}
        recorded = await tx.gate_results.record_readings(
            [
                reading
                for run, ctx in contexts.items()
                for due, results in still[run]
                for reading in _readings(ctx, due, results)
            ],
            at=now,
        )
        for run, ctx in contexts.items():
            outcome = await _act(ctx, planned[run], still[run], recorded, deps)
            done[run] = (outcome, await settle(ctx, outcome))
        await tx.runs.flush()
    for run, (outcome, ledgered) in done.items():
        await told(run, user="scheduler", action="check gates", outcome=outcome, ledgered=ledgered, deps=deps)
    return {run: outcome for run, (outcome, _) in done.items()}


async def _left_to_measure(peek: RunContext) -> list[Due]:
    """What is due for the run now and not measured yet."""
    dues = []
    for due in due_now(peek):
        left = await _not_yet_measured(peek, due)
        if left.slots:
            dues.append(left)
    return dues


async def _measure_all(
    plan: Plan, dues: Sequence[Due], deps: Deps, at: datetime
) -> list[tuple[GateResult, ...]]:
    return list(await asyncio.gather(*(_measure(plan, due, deps, at) for due in dues)))


def _still_due(
    ctx: RunContext, dues: Sequence[Due], measured: Sequence[tuple[GateResult, ...]]
) -> list[tuple[Due, tuple[GateResult, ...]]]:
    """The measured dues still due in the run as the write transaction found it."""
    current = {d.checkpoint: d for d in due_now(ctx)}
    return [
        (due, results)
        for due, results in zip(dues, measured, strict=True)
        if (again := current.get(due.checkpoint)) is not None and set(due.slots) <= set(again.slots)
    ]


async def _act(
    ctx: RunContext,
    dues: Sequence[Due],
    still: Sequence[tuple[Due, tuple[GateResult, ...]]],
    recorded: set[tuple[str, str, str]],
    deps: Deps,
) -> Outcome:
    """Feed the readings recorded now to the engine, one checkpoint at a time, then a tick."""
    checked: list[tuple[str, list[GateResult]]] = []
    for due, results in still:
        fresh = [r for r in results if (ctx.run, due.checkpoint, r.gate) in recorded]
        if fresh:
            await apply(
                ctx, ev.GateResults(at=ctx.now, checkpoint=due.checkpoint, results=tuple(fresh)), deps
            )
            checked.append((due.checkpoint, fresh))
    if not checked:
        current = {d.checkpoint for d in due_now(ctx)}
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


def _readings(ctx: RunContext, due: Due, results: Iterable[GateResult]) -> list[GateReading]:
    return [
        GateReading(
            run_id=ctx.run,
            checkpoint=due.checkpoint,
            gate=r.gate,
            slot=due.slot_of(r.gate),
            outcome=str(r.outcome),
            value=r.value,
            reason=r.reason,
            packet_version=ctx.version,
        )
        for r in results
    ]


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
