"""Pushed alerts: a firing Alertmanager alert counts as a failing reading of its gate, at once.

Scheduled checks are sparse (every two hours late in hyper-care): an outage between two of them
would go unseen. An alert whose labels name a plan (`cutover_plan`) and one of its gates
(`cutover_gate`) is, for every active run of that plan, one failing reading of that gate taken
now, and it goes to the engine exactly as a scheduled failing reading would: under the checkpoint
whose gates are being checked now (the one in flight, `watch`, or `hypercare`), counted by the
gate's policy (`for`, `failure_limit`, readiness), and taking the gate's action when that policy
says so (a freeze still moves no traffic). A gate that is not checked now (its checkpoint has not
moved traffic, the run is not live) counts the alert as nothing. Resolved alerts never get here:
the next scheduled reading decides.

Each alert reading is recorded in `gate_results` under a slot of its own, negative so it never
takes a scheduled slot: `-(1 + n)` for the gate's n-th interval since the window start. So one
gate counts at most one alert reading per interval and run, however many Alertmanager replicas
deliver it or how often it is re-sent (the unique key `(run, checkpoint, gate, slot)`), and a
retried webhook whose first delivery was already committed changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from handlers.commands import AlertFired
from handlers.context import RunContext, ledger, save
from handlers.deps import Deps
from handlers.effects import apply
from handlers.flow import on_run
from handlers.gate_checks import due_now
from handlers.outcome import Outcome
from packets.engine import events as ev
from packets.gates import GateResult
from packets.gates import Outcome as GateOutcome
from packets.plan import Plan

ACTOR = "alertmanager"


@dataclass(frozen=True, slots=True)
class AlertsOutcome:
    """What one alert did: one outcome per active run of its plan (none: no active run)."""

    alert: AlertFired
    runs: tuple[Outcome, ...]

    @property
    def counted(self) -> int:
        return sum(1 for o in self.runs if o.ok and o.data.get("counted"))


def alert_slot(plan: Plan, gate: str, at: datetime) -> int:
    """The alert slot of `gate` at `at`: negative, one per gate interval since the window start."""
    elapsed = max(at - plan.window.start, timedelta(0))
    return -(1 + int(elapsed // plan.gate_policy_of(gate).interval))


def reason_of(cmd: AlertFired, plan: Plan) -> str:
    """The reading's reason, as the room reads it: the alert, since when (plan offset), its summary."""
    text = f"Alertmanager alert {cmd.alert or 'unnamed'} firing"
    if cmd.starts_at is not None:
        local = cmd.starts_at.astimezone(plan.window.start.tzinfo)
        text += f" since {local:%H:%M:%S} ({local:%z})"
    if cmd.summary:
        text += f": {cmd.summary}"
    return text


async def alert_fired(cmd: AlertFired, deps: Deps) -> AlertsOutcome:
    """Count one firing alert as a failing reading of its gate for every active run of its plan."""
    async with deps.uow.transaction(read_only=True) as tx:
        runs = [row.run_id for row in await tx.runs.active_of_plan(cmd.plan)]
    outcomes = [await _count(run, cmd, deps) for run in runs]
    return AlertsOutcome(alert=cmd, runs=tuple(outcomes))


async def _count(run: str, cmd: AlertFired, deps: Deps) -> Outcome:
    async def body(ctx: RunContext) -> Outcome:
        if cmd.gate not in ctx.plan.gates:
            return Outcome.done(
                f"The plan has no gate {cmd.gate}; the alert counts as nothing.", run=ctx.run, counted=False
            )
        # The checkpoint in flight that checks this gate now (the first, for a watched gate).
        due = next((d for d in due_now(ctx, business_hours=False) if cmd.gate in d.gates), None)
        if due is None:
            return Outcome.done(
                f"Gate {cmd.gate} is not checked now; the alert counts as nothing.",
                run=ctx.run,
                current_version=ctx.version,
                counted=False,
            )
        result = GateResult(
            gate=cmd.gate,
            outcome=GateOutcome.FAIL,
            value=cmd.value,
            reason=reason_of(cmd, ctx.plan),
            at=ctx.now,
        )
        recorded = await ctx.tx.gate_results.record(
            run_id=ctx.run,
            checkpoint=due.checkpoint,
            gate=cmd.gate,
            slot=alert_slot(ctx.plan, cmd.gate, ctx.now),
            outcome=str(result.outcome),
            value=result.value,
            reason=result.reason,
            at=ctx.now,
            packet_version=ctx.version,
        )
        if not recorded:
            return Outcome.done(
                f"An alert on gate {cmd.gate} was already counted in this interval.",
                run=ctx.run,
                current_version=ctx.version,
                counted=False,
            )
        await ledger(
            ctx,
            actor=ACTOR,
            kind="alert_received",
            payload={
                "alert": cmd.alert,
                "fingerprint": cmd.fingerprint,
                "starts_at": cmd.starts_at.isoformat() if cmd.starts_at is not None else None,
                "gate": cmd.gate,
                "checkpoint": due.checkpoint,
                "reading": result.as_json(),
            },
        )
        before = ctx.progress.state
        await apply(ctx, ev.GateResults(at=ctx.now, checkpoint=due.checkpoint, results=(result,)), deps)
        await save(ctx)
        after = ctx.progress.state
        moved = f"; the run is now {after}" if after != before else ""
        return Outcome.done(
            f"The alert counted as a failing reading of {cmd.gate} at {due.checkpoint}{moved}.",
            run=ctx.run,
            current_version=ctx.version,
            counted=True,
            state=str(after),
        )

    return await on_run(run, user=ACTOR, action="count an alert", deps=deps, body=body)
