"""A gate against a baseline (issue 13): `baseline: QUERY` and `pass: "<= 2x baseline"` or
`"<= baseline + 0.005"`, read at the same instant; no-data on either side is no-data."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta

import pytest
import yaml

from bot.telemetry.simulated import SimulatedTelemetry
from handlers.gate_checks import measure_gate
from packets.engine.effects import OpenHold
from packets.engine.events import GateResults
from packets.engine.progress import RunState
from packets.gates import GateSpec, GateSpecError, Outcome, Relative, evaluate
from packets.plan import PlanInvalid
from packets.plan_load import load_plan
from tests.engine_fixtures import GATES, WarRoom, make_plan, minutes
from tests.test_plan_checks import dump, small_plan


@pytest.mark.parametrize(
    ("text", "relative"),
    [
        ("<= 2x baseline", Relative(2.0, 0.0)),
        ("<= baseline + 0.005", Relative(1.0, 0.005)),
        (">= 0.9x baseline - 0.01", Relative(0.9, -0.01)),
        ("<= baseline", Relative(1.0, 0.0)),
    ],
)
def test_a_rule_against_a_baseline_reads_as_factor_and_offset(text: str, relative: Relative) -> None:
    spec = GateSpec.parse(text)
    assert spec.relative == relative
    assert GateSpec.parse(str(spec)) == spec


@pytest.mark.parametrize("text", ["<= 2x", "<= baseline +", "<= twice baseline", "baseline <= 2"])
def test_a_garbled_baseline_rule_is_refused(text: str) -> None:
    with pytest.raises(GateSpecError):
        GateSpec.parse(text)


def test_p95_at_twice_the_legacy_baseline_passes_and_just_above_it_fails() -> None:
    spec = GateSpec.parse("<= 2x baseline")
    assert evaluate(0.40, spec, gate="p95", baseline=0.20).outcome is Outcome.PASS
    failed = evaluate(0.41, spec, gate="p95", baseline=0.20)
    assert failed.outcome is Outcome.FAIL
    assert "baseline 0.2" in failed.reason and "<= 0.4" in failed.reason


def test_an_offset_from_the_baseline_is_added_to_its_reading() -> None:
    spec = GateSpec.parse("<= baseline + 0.005")
    assert evaluate(0.006, spec, gate="mismatch", baseline=0.002).outcome is Outcome.PASS
    assert evaluate(0.008, spec, gate="mismatch", baseline=0.002).outcome is Outcome.FAIL


def test_no_data_on_either_side_is_no_data() -> None:
    spec = GateSpec.parse("<= 2x baseline")
    missing_baseline = evaluate(0.1, spec, gate="p95", baseline=None, baseline_missing="legacy scrape down")
    assert missing_baseline.outcome is Outcome.NO_DATA and "legacy scrape down" in missing_baseline.reason
    assert evaluate(None, spec, gate="p95", baseline=0.2).outcome is Outcome.NO_DATA
    assert evaluate(float("nan"), spec, gate="p95", baseline=0.2).outcome is Outcome.NO_DATA


def _baseline_plan(telemetry: dict[str, list[list[object]]]) -> dict[str, object]:
    data = small_plan()
    data["telemetry"] = {"provider": "simulated"}
    data["gates"]["p95"] = {
        "query": "p95_new",
        "baseline": "p95_legacy",
        "pass": "<= 2x baseline",
        "on_fail": "rollback_cohort",
    }
    data["rehearsal"] = {"telemetry": telemetry}
    return data


def test_the_rehearsal_reads_a_baseline_series_at_the_same_instant() -> None:
    plan = load_plan(
        dump(
            _baseline_plan({"p95": [["0m", 0.3], ["30m", 0.5]], "p95@baseline": [["0m", 0.2], ["40m", 0.3]]})
        )
    )
    telemetry = SimulatedTelemetry(plan)
    start = plan.window.start

    def outcome(at_minutes: int) -> Outcome:
        return asyncio.run(
            measure_gate(plan, "p95", telemetry, at=start + timedelta(minutes=at_minutes))
        ).outcome

    assert outcome(10) is Outcome.PASS  # 0.3 <= 2 x 0.2
    assert outcome(35) is Outcome.FAIL  # 0.5 > 2 x 0.2
    assert outcome(45) is Outcome.PASS  # 0.5 <= 2 x 0.3


def test_a_baseline_gate_without_a_timeline_rehearses_as_passing() -> None:
    plan = load_plan(dump(_baseline_plan({})))
    result = asyncio.run(measure_gate(plan, "p95", SimulatedTelemetry(plan), at=plan.window.start))
    assert result.outcome is Outcome.PASS


def test_a_baseline_rule_without_a_baseline_query_is_refused_with_its_line() -> None:
    data = _baseline_plan({})
    del data["gates"]["p95"]["baseline"]
    text = dump(data)
    with pytest.raises(PlanInvalid) as refused:
        load_plan(text, source="bad.yaml")
    [problem] = [p for p in refused.value.problems if p.path == "gates.p95.pass"]
    assert "add baseline: QUERY" in problem.message
    assert problem.line is not None and "<= 2x baseline" in text.splitlines()[problem.line - 1]


def test_a_baseline_series_for_a_gate_without_a_baseline_is_refused() -> None:
    data = _baseline_plan({"auth-success@baseline": [["0m", 0.9]]})
    with pytest.raises(PlanInvalid) as refused:
        load_plan(yaml.safe_dump(data, sort_keys=False), source="bad.yaml")
    assert any(p.path == "rehearsal.telemetry.auth-success@baseline" for p in refused.value.problems)


def test_a_p95_over_twice_legacy_for_fifteen_minutes_rolls_back_but_a_one_minute_spike_does_not() -> None:
    gates = copy.deepcopy(GATES)
    gates["auth-success"] = {
        "query": "p95_new",
        "baseline": "p95_legacy",
        "pass": "<= 2x baseline",
        "on_fail": "hold",
        "for": "15m",
    }
    room = WarRoom.open(make_plan(gates=gates)).canary_running()
    spec = GateSpec.parse(gates["auth-success"]["pass"])

    def read(m: int, value: float) -> None:
        result = evaluate(value, spec, gate="auth-success", at=minutes(m), baseline=0.2)
        latency = evaluate(0.1, GateSpec.parse("<= 0.25"), gate="latency")
        room.do(GateResults(at=minutes(m), checkpoint="canary", results=(result, latency)))

    read(6, 0.9)  # a one-minute spike
    read(7, 0.3)
    assert room.progress.state is RunState.RUNNING
    for m in range(8, 23):
        read(m, 0.45)
        assert room.progress.state is RunState.RUNNING, f"acted after {m - 8} minutes"
    read(23, 0.45)
    assert room.progress.state is RunState.HELD and room.last is not None and room.last.of(OpenHold)
