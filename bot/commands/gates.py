"""`cutover-bot gates check PLAN [--checkpoint ID] [--json] [--at WHEN]`.

Evaluates the plan's gates (all of them, or one checkpoint's) once against the plan's telemetry
provider and prints, per gate: query, value, threshold, outcome and why. It is the pre-window
wiring check: "does every gate query return one number today?".

Exit status: 0 when every gate produced a number (pass or fail: a failing gate before the window
is information, not a broken setup), 1 when any gate is no-data (the telemetry is not wired the
way the plan assumes), 2 for an unreadable or invalid plan, an unknown checkpoint or a bad --at.
Outcomes are the raw pass/fail/no-data of `packets.gates.evaluate`; how no-data counts
(`gate_policy.no_data`) is the engine's business, and the reason says it.

`--at` evaluates at another moment: an ISO timestamp with offset, or `+35m` from the window
start (handy with the simulated provider). With Prometheus it pins the query's evaluation time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from bot.telemetry import telemetry_for
from handlers.ports import Measurement, Telemetry
from packets.durations import DurationError, format_duration, parse_duration
from packets.gates import GateSpec, GateSpecError, Outcome, evaluate
from packets.plan import Plan, PlanInvalid
from packets.plan_load import load_plan

EXIT_OK = 0
EXIT_NO_DATA = 1
EXIT_BAD_INPUT = 2


@dataclass(frozen=True, slots=True)
class GateCheck:
    gate: str
    query: str
    threshold: str
    value: float | None
    outcome: Outcome
    reason: str
    # What a failure of this gate would do, as a sentence: its action, and whether `for`, a
    # failure limit, a readiness timeout or a baseline is involved.
    on_failure: str = ""

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "outcome": str(self.outcome)}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gates = subparsers.add_parser("gates", help="evaluate a plan's gates against its telemetry")
    actions = gates.add_subparsers(dest="gates_action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="evaluate every gate (or one checkpoint's) once, now",
        description="Evaluate the plan's gates once. Exit 0: every gate gave a number; "
        "1: some gate is no-data; 2: bad plan or arguments.",
    )
    check.add_argument("plan", metavar="PLAN", help="plan YAML file")
    check.add_argument("--checkpoint", metavar="ID", help="only the gates of this checkpoint")
    check.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    check.add_argument(
        "--at", metavar="WHEN", help="ISO timestamp with offset, or +DURATION from the window start"
    )
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    path = Path(args.plan)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _error(f"cannot read plan {path}: {getattr(exc, 'strerror', None) or exc}")
        return EXIT_BAD_INPUT
    try:
        plan = load_plan(text, source=str(path))
    except PlanInvalid as invalid:
        for line in invalid.lines():
            _error(line)
        return EXIT_BAD_INPUT
    try:
        names = gate_names(plan, checkpoint=args.checkpoint)
        at = evaluation_time(plan, args.at)
    except ValueError as exc:
        _error(str(exc))
        return EXIT_BAD_INPUT
    try:
        checks = asyncio.run(_check(plan, names, base_dir=path.parent, at=at, pinned=args.at is not None))
    except ValueError as exc:  # a provider the plan cannot build (no url, no path)
        _error(str(exc))
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps([c.as_json() for c in checks], indent=2))
    else:
        _print_table(plan, checks, at=at)
    return EXIT_NO_DATA if any(c.outcome is Outcome.NO_DATA for c in checks) else EXIT_OK


def gate_names(plan: Plan, *, checkpoint: str | None) -> list[str]:
    """Every gate of the plan in plan order, or the gates of one checkpoint."""
    if checkpoint is None:
        return list(plan.gates)
    if not plan.has_checkpoint(checkpoint):
        known = ", ".join(c.id for c in plan.checkpoints)
        raise ValueError(f"unknown checkpoint {checkpoint!r}; the plan has: {known}")
    return list(plan.checkpoint(checkpoint).gates)


def evaluation_time(plan: Plan, when: str | None) -> datetime:
    if when is None:
        return datetime.now(UTC)
    if when.startswith("+"):
        try:
            return plan.window.start + parse_duration(when[1:])
        except DurationError as exc:
            raise ValueError(f"--at: {exc}") from None
    try:
        at = datetime.fromisoformat(when)
    except ValueError:
        raise ValueError(f"--at: {when!r} is neither an ISO timestamp nor +DURATION") from None
    if at.tzinfo is None:
        raise ValueError("--at: the timestamp needs an offset, like 2026-11-24T21:35:00-05:00")
    return at


async def check_gates(
    plan: Plan, names: Sequence[str], telemetry: Telemetry, *, at: datetime
) -> list[GateCheck]:
    """Measure and evaluate each named gate once, concurrently; results in the order given."""
    return list(await asyncio.gather(*(_check_one(plan, name, telemetry, at=at) for name in names)))


async def _check(
    plan: Plan, names: list[str], *, base_dir: Path, at: datetime, pinned: bool
) -> list[GateCheck]:
    async with aiohttp.ClientSession() as session:
        telemetry = telemetry_for(plan, session=session, base_dir=base_dir, pin_time=pinned)
        return await check_gates(plan, names, telemetry, at=at)


async def _check_one(plan: Plan, name: str, telemetry: Telemetry, *, at: datetime) -> GateCheck:
    gate = plan.gates.get(name)
    if gate is None:
        return GateCheck(name, "", "", None, Outcome.NO_DATA, "gate is not defined in the plan")
    measurement = await _reading(telemetry, gate=name, query=gate.query, at=at)
    baseline = None
    if gate.baseline is not None:
        baseline = await _reading(telemetry, gate=plan.baseline_series(name), query=gate.baseline, at=at)
    return evaluate_reading(plan, name, measurement, at=at, baseline=baseline)


async def _reading(telemetry: Telemetry, *, gate: str, query: str, at: datetime) -> Measurement:
    try:
        return await telemetry.measure(gate=gate, query=query, at=at)
    except Exception as exc:  # the contract says never; a check command still reports, not crashes
        return Measurement(None, f"telemetry provider raised {type(exc).__name__}")


def evaluate_reading(
    plan: Plan, name: str, measurement: Measurement, *, at: datetime, baseline: Measurement | None = None
) -> GateCheck:
    """One reading against the gate's rule, through `packets.gates` like the engine does."""
    gate = plan.gates[name]
    try:
        spec = GateSpec.parse(gate.pass_)
    except GateSpecError as exc:  # the plan checks refuse this; a plan built in code may not be checked
        return GateCheck(name, gate.query, gate.pass_, measurement.value, Outcome.NO_DATA, str(exc))
    result = evaluate(
        measurement.value,
        spec,
        plan.gate_policy_of(name).no_data,
        gate=name,
        at=at,
        why_missing=measurement.reason,
        baseline=baseline.value if baseline is not None else None,
        baseline_missing=baseline.reason if baseline is not None else "",
    )
    reason = result.reason
    if result.outcome is not Outcome.NO_DATA and measurement.reason:
        reason += f" ({measurement.reason})"  # e.g. which rehearsal point the value came from
    return GateCheck(
        name, gate.query, gate.pass_, result.value, result.outcome, reason, on_failure=on_failure(plan, name)
    )


_ACTION_WORDS = {
    "pause": "pause the run",
    "hold": "hold the checkpoint",
    "rollback_cohort": "roll the cohort back",
    "freeze": "freeze the run",
    "global_rollback": "roll all traffic back",
}


def on_failure(plan: Plan, name: str) -> str:
    """One sentence: the action a failure of gate `name` takes, and what delays or shapes it."""
    gate = plan.gates[name]
    policy = plan.gate_policy_of(name)
    action = _ACTION_WORDS.get(gate.on_fail, gate.on_fail)
    if gate.kind == "readiness" and gate.timeout is not None:
        when = f"if it has not become ready {format_duration(gate.timeout)} into the stage"
    elif policy.lasting > timedelta(0):
        when = f"once it has failed for {format_duration(policy.lasting)}"
    else:
        when = "at once"
    parts = [f"A failure would {action} {when}"]
    if policy.tolerated:
        parts.append(f"after more than {policy.tolerated} failing readings in the stage")
    if gate.baseline is not None:
        parts.append(f"compared with the baseline {gate.baseline}")
    if policy.no_data == "hold":
        parts.append("and no data holds the checkpoint")
    return ", ".join(parts) + "."


def _print_table(plan: Plan, checks: list[GateCheck], *, at: datetime) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{plan.plan}: gates at {at.isoformat(timespec='seconds')} ({plan.telemetry.provider})"
    )
    # Names, numbers and outcomes stay whole (people grep and copy them); queries and reasons wrap.
    for column in ("gate", "query", "value", "threshold", "outcome", "reason", "on failure"):
        table.add_column(column, overflow="fold", no_wrap=column not in ("query", "reason", "on failure"))
    style = {"pass": "green", "fail": "red", "no-data": "yellow"}
    for c in checks:
        value = "-" if c.value is None else f"{c.value:.6g}"
        outcome = f"[{style[c.outcome]}]{c.outcome}[/]"
        table.add_row(c.gate, c.query, value, c.threshold, outcome, c.reason, c.on_failure)
    console = Console(highlight=False)
    if not console.is_terminal:
        # Piped into a ticket or a log: 80 columns would fold every query; nobody reflows these.
        console.width = 160
    if not checks:
        console.print(f"{plan.plan}: no gates to check")
        return
    console.print(table)
    counts = {o: sum(1 for c in checks if c.outcome == o) for o in ("pass", "fail", "no-data")}
    console.print(
        f"{len(checks)} gates: {counts['pass']} pass, {counts['fail']} fail, {counts['no-data']} no-data"
    )


def _error(message: str) -> None:
    print(message, file=sys.stderr)
