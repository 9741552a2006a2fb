"""SimulatedTelemetry: the plan's rehearsal timelines as step functions, else passing values."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bot.telemetry import FileTelemetry, PrometheusTelemetry, SimulatedTelemetry, telemetry_for
from bot.telemetry.simulated import plausible_passing_value
from handlers.ports import Measurement
from packets.gates import GateSpec
from packets.plan import Plan, Rehearsal, Telemetry
from packets.plan_load import load_plan

PLAN = """\
plan: payments-tokenization-cutover
title: Card-token lookups move to the tokenization service
channel: C0WARROOM
window: {{start: 2026-11-24T21:00:00-05:00, end: 2026-11-25T01:00:00-05:00}}
roles:
  release-authority: {{primary: U0REL1}}
  release-eng: {{primary: U0ENG1}}
authority:
  signoff: [release-authority]
  adopt_packets: [release-authority]
  start_and_rollback: [release-authority, release-eng]
{telemetry}
gates:
  auth-success:       {{query: "q1", pass: ">= 0.995", on_fail: rollback_cohort}}
  lookup-latency-p95: {{query: "q2", pass: "<= 0.25",  on_fail: hold}}
  settlement-parity:  {{query: "q3", pass: ">= 0.999", on_fail: hold}}
  fallback-health:    {{query: "q4", pass: ">= 1",     on_fail: freeze}}
  error-budget:       {{query: "q5", pass: "< 5",      on_fail: pause}}
checkpoints:
  - {{id: canary-a, title: Shift merchant cohort A, owner: release-eng,
     traffic: {{percent: 1, cohort: merchant-a}}, soak: 20m,
     gates: [auth-success, lookup-latency-p95, settlement-parity, fallback-health, error-budget]}}
{rehearsal}
"""

TIMELINE = """\
rehearsal:
  telemetry:
    lookup-latency-p95: [[0m, 0.12], [35m, 0.31], [50m, 0.14]]
    settlement-parity: [[10m, 0.9995], [20m, null], [30m, 0.9992]]
    auth-success: [[5m, 0.999], [40m, 0.97]]
"""


def plan(*, rehearsal: str = TIMELINE, telemetry: str = "telemetry: {provider: simulated}") -> Plan:
    return load_plan(PLAN.format(rehearsal=rehearsal, telemetry=telemetry), source="test.yaml")


def at(p: Plan, minutes: float) -> Measurement:
    return SimulatedTelemetry(p).reading("lookup-latency-p95", at=p.window.start + timedelta(minutes=minutes))


def test_a_timeline_is_a_step_function_holding_each_value_until_the_next_point() -> None:
    p = plan()
    values = [at(p, m).value for m in (0, 34.99, 35, 49, 50, 240)]

    assert values == [0.12, 0.12, 0.31, 0.31, 0.14, 0.14]


def test_a_timeline_value_says_where_it_came_from() -> None:
    assert at(plan(), 36) == Measurement(0.31, "rehearsal timeline from +35m")


def test_a_null_point_is_no_data_until_the_next_point() -> None:
    p = plan()
    sim = SimulatedTelemetry(p)
    start = p.window.start

    readings = [sim.reading("settlement-parity", at=start + timedelta(minutes=m)) for m in (15, 20, 29, 30)]

    assert [r.value for r in readings] == [0.9995, None, None, 0.9992]
    assert readings[1].reason == "rehearsal timeline says no data from +20m"


def test_points_listed_out_of_order_in_a_plan_built_in_code_are_taken_in_time_order() -> None:
    # A YAML plan with unordered points is refused by the plan checks; one built in code is not.
    p = plan(rehearsal="")
    p = p.model_copy(
        update={
            "rehearsal": Rehearsal(
                telemetry={"auth-success": [(timedelta(minutes=40), 0.97), (timedelta(minutes=5), 0.999)]}
            )
        }
    )
    sim = SimulatedTelemetry(p)

    assert sim.reading("auth-success", at=p.window.start + timedelta(minutes=10)).value == 0.999
    assert sim.reading("auth-success", at=p.window.start + timedelta(minutes=45)).value == 0.97


def test_before_the_first_point_a_gate_reads_a_passing_value_of_its_own_rule() -> None:
    p = plan()

    reading = SimulatedTelemetry(p).reading("settlement-parity", at=p.window.start + timedelta(minutes=5))

    assert reading == Measurement(
        0.9998, "before its first rehearsal point; rehearsal default: a passing value"
    )


def test_a_gate_without_a_timeline_reads_a_plausible_passing_value() -> None:
    p = plan()
    sim = SimulatedTelemetry(p)

    values = {
        gate: sim.reading(gate, at=p.window.start).value for gate in ("fallback-health", "error-budget")
    }

    assert values == {"fallback-health": 1.0, "error-budget": 2.5}


def test_without_a_rehearsal_section_every_gate_passes() -> None:
    p = plan(rehearsal="")
    sim = SimulatedTelemetry(p)

    for name, gate in p.gates.items():
        reading = sim.reading(name, at=p.window.start + timedelta(hours=1))
        assert reading.value is not None and GateSpec.parse(gate.pass_).admits(reading.value), name


def test_rehearsal_default_no_data_makes_untimed_gates_no_data() -> None:
    p = plan(rehearsal="rehearsal: {default: no-data, telemetry: {auth-success: [[10m, 0.999]]}}")
    sim = SimulatedTelemetry(p)

    assert sim.reading("fallback-health", at=p.window.start) == Measurement(
        None, "no rehearsal timeline; rehearsal.default is no-data"
    )
    assert sim.reading("auth-success", at=p.window.start).value is None
    assert sim.reading("auth-success", at=p.window.start + timedelta(minutes=10)).value == 0.999


def test_a_gate_the_plan_does_not_define_is_no_data() -> None:
    p = plan()

    reading = SimulatedTelemetry(p).reading("no-such-gate", at=p.window.start)

    assert reading == Measurement(None, "gate no-such-gate is not in the plan and has no rehearsal timeline")


def test_the_window_start_can_be_moved_for_a_run_that_started_late() -> None:
    p = plan()
    late = p.window.start + timedelta(minutes=30)
    sim = SimulatedTelemetry(p, window_start=late)

    assert sim.reading("lookup-latency-p95", at=late + timedelta(minutes=35)).value == 0.31
    assert sim.reading("lookup-latency-p95", at=late + timedelta(minutes=34)).value == 0.12


async def test_measure_gives_the_same_answer_as_reading_every_time() -> None:
    p = plan()
    when = p.window.start + timedelta(minutes=36)
    readings = [
        await SimulatedTelemetry(p).measure(gate="lookup-latency-p95", query="q2", at=when) for _ in range(3)
    ]

    assert readings == [SimulatedTelemetry(p).reading("lookup-latency-p95", at=when)] * 3


def test_passing_values_look_like_a_healthy_system() -> None:
    assert plausible_passing_value(">= 0.995") == 0.999
    assert plausible_passing_value("<= 0.25") == 0.125
    assert plausible_passing_value(">= 1") == 1.0
    assert plausible_passing_value("< 5") == 2.5
    assert plausible_passing_value("> 0") == 1.0
    assert plausible_passing_value("== 0") == 0.0
    assert plausible_passing_value("about 3") is None


@given(
    op=st.sampled_from([">=", ">", "<=", "<", "=="]),
    threshold=st.floats(min_value=-1e12, max_value=1e12, allow_nan=False).map(lambda f: float(f"{f:.9g}")),
)
def test_a_plausible_passing_value_always_passes_its_rule(op: str, threshold: float) -> None:
    rule = f"{op} {threshold!r}"
    value = plausible_passing_value(rule)

    assert value is not None
    assert GateSpec.parse(rule).admits(value)


def test_the_factory_picks_the_provider_the_plan_names(tmp_path: Path) -> None:
    simulated = telemetry_for(plan())
    prometheus = telemetry_for(
        plan(telemetry="telemetry: {provider: prometheus, url: 'http://u:p@127.0.0.1:9090'}")
    )
    relative = telemetry_for(plan(telemetry="telemetry: {provider: file, path: t.yaml}"), base_dir=tmp_path)
    absolute = telemetry_for(plan(telemetry=f"telemetry: {{provider: file, path: {tmp_path}/x.yaml}}"))

    assert isinstance(simulated, SimulatedTelemetry)
    assert isinstance(prometheus, PrometheusTelemetry)
    assert prometheus.query_url == "http://127.0.0.1:9090/api/v1/query"
    assert isinstance(relative, FileTelemetry) and relative.path == tmp_path / "t.yaml"
    assert isinstance(absolute, FileTelemetry) and absolute.path == tmp_path / "x.yaml"


def test_the_factory_refuses_a_prometheus_provider_without_a_url() -> None:
    # The plan checks refuse this in a file; a plan built in code can still get here.
    no_url = plan().model_copy(update={"telemetry": Telemetry(provider="prometheus")})
    try:
        telemetry_for(no_url)
    except ValueError as exc:
        assert "needs a url" in str(exc)
    else:
        raise AssertionError("expected ValueError")
