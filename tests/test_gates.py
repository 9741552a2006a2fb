"""Gate rules, one reading's outcome, consecutive passes, and the rollback matrix."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from packets.gates import (
    SEVERITY,
    Comparison,
    GateResult,
    GateSpec,
    GateSpecError,
    NoDataPolicy,
    Outcome,
    RollbackMatrix,
    Verdict,
    evaluate,
    last_failed,
    most_severe,
    remember,
    streak_passes,
    verdict,
)
from packets.plan import Action
from tests.engine_fixtures import make_plan

AT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)

COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}


def result(outcome: Outcome, gate: str = "g") -> GateResult:
    return GateResult(gate=gate, outcome=outcome, value=1.0 if outcome is not Outcome.NO_DATA else None)


PASS, FAIL, NO_DATA = result(Outcome.PASS), result(Outcome.FAIL), result(Outcome.NO_DATA)


@pytest.mark.parametrize(
    ("text", "comparison", "threshold"),
    [
        (">= 0.995", Comparison.AT_LEAST, 0.995),
        (">1", Comparison.ABOVE, 1.0),
        ("  <= 0.25 ", Comparison.AT_MOST, 0.25),
        ("< -3e2", Comparison.BELOW, -300.0),
        ("== 1", Comparison.EQUAL, 1.0),
        ("<= .5", Comparison.AT_MOST, 0.5),
    ],
)
def test_a_rule_reads_as_a_comparison_against_a_number(
    text: str, comparison: Comparison, threshold: float
) -> None:
    assert GateSpec.parse(text) == GateSpec(comparison, threshold)


@pytest.mark.parametrize("text", ["", ">=", "0.995", "=> 1", "!= 1", ">= one", ">= 1 2", "> 1e999"])
def test_a_rule_that_is_not_an_operator_and_a_number_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(GateSpecError, match=r"like '>= 0\.995'|finite"):
        GateSpec.parse(text)


@given(
    op=st.sampled_from(sorted(COMPARE)),
    threshold=st.floats(allow_nan=False, allow_infinity=False, width=32),
    value=st.floats(allow_nan=False, allow_infinity=False, width=32),
)
def test_a_rule_admits_exactly_what_its_comparison_says(op: str, threshold: float, value: float) -> None:
    spec = GateSpec.parse(f"{op} {threshold!r}")
    assert spec.threshold == threshold
    assert spec.admits(value) is COMPARE[op](value, threshold)
    assert GateSpec.parse(str(spec)).comparison is spec.comparison


def test_a_reading_inside_the_rule_passes_and_one_outside_fails_saying_why() -> None:
    spec = GateSpec.parse(">= 0.995")
    passed = evaluate(0.997, spec, gate="auth-success", at=AT)
    failed = evaluate(0.98, spec, gate="auth-success", at=AT)
    assert (passed.outcome, passed.value, passed.at) == (Outcome.PASS, 0.997, AT)
    assert failed.outcome is Outcome.FAIL and failed.reason == "0.98 is not >= 0.995"


@pytest.mark.parametrize("value", [None, math.nan, math.inf])
def test_a_missing_or_non_finite_reading_is_no_data_never_a_pass(value: float | None) -> None:
    outcome = evaluate(value, GateSpec.parse("<= 0.25"), "pass", gate="latency")
    assert outcome.outcome is Outcome.NO_DATA and outcome.value is None
    assert "counts as a pass" in outcome.reason


def test_a_no_data_reason_keeps_why_the_telemetry_was_missing() -> None:
    outcome = evaluate(None, GateSpec.parse("<= 0.25"), gate="latency", why_missing="prometheus timed out")
    assert outcome.reason.startswith("prometheus timed out; no-data counts as a failure")


@pytest.mark.parametrize(
    ("policy", "expected"), [("fail", Verdict.FAIL), ("pass", Verdict.PASS), ("ignore", Verdict.IGNORE)]
)
def test_no_data_counts_the_way_the_gate_policy_says(policy: NoDataPolicy, expected: Verdict) -> None:
    assert verdict(Outcome.NO_DATA, policy) is expected
    assert verdict(Outcome.PASS, policy) is Verdict.PASS
    assert verdict(Outcome.FAIL, policy) is Verdict.FAIL


def test_the_window_keeps_only_the_last_consecutive_passes_results() -> None:
    window: tuple[GateResult, ...] = ()
    for item in (FAIL, PASS, PASS, PASS):
        window = remember(window, item, keep=3, no_data="fail")
    assert window == (PASS, PASS, PASS)
    assert streak_passes(window, needed=3, no_data="fail")


def test_a_streak_needs_as_many_results_as_consecutive_passes() -> None:
    assert not streak_passes((PASS, PASS), needed=3, no_data="fail")
    assert not streak_passes((), needed=1, no_data="fail")


def test_one_failure_breaks_the_streak() -> None:
    assert not streak_passes((PASS, FAIL, PASS), needed=3, no_data="fail")
    assert streak_passes((FAIL, PASS, PASS), needed=2, no_data="fail")


def test_ignored_no_data_neither_breaks_nor_extends_a_streak() -> None:
    window = remember((PASS,), NO_DATA, keep=2, no_data="ignore")
    assert window == (PASS,)
    assert not streak_passes(window, needed=2, no_data="ignore")
    assert streak_passes(remember(window, PASS, keep=2, no_data="ignore"), needed=2, no_data="ignore")


def test_no_data_under_a_pass_policy_extends_a_streak() -> None:
    assert streak_passes((PASS, NO_DATA), needed=2, no_data="pass")
    assert not streak_passes((PASS, NO_DATA), needed=2, no_data="fail")


def test_the_last_result_decides_whether_a_gate_is_failing_now() -> None:
    assert last_failed((PASS, FAIL), no_data="fail")
    assert not last_failed((FAIL, PASS), no_data="fail")
    assert last_failed((PASS, NO_DATA), no_data="fail")
    assert not last_failed((), no_data="fail")


def test_actions_rank_pause_hold_rollback_cohort_freeze_global_rollback() -> None:
    assert SEVERITY == ("pause", "hold", "rollback_cohort", "freeze", "global_rollback")
    assert most_severe(["hold", "pause", "freeze", "rollback_cohort"]) == "freeze"
    assert most_severe([]) is None


@given(st.lists(st.sampled_from(SEVERITY), min_size=1))
def test_the_most_severe_action_is_never_outranked_by_another_in_the_batch(actions: list[Action]) -> None:
    chosen = most_severe(actions)
    assert chosen is not None and chosen in actions
    assert all(SEVERITY.index(a) <= SEVERITY.index(chosen) for a in actions)


def test_the_matrix_takes_each_gates_action_from_the_plan() -> None:
    matrix = RollbackMatrix.of(make_plan())
    assert matrix.action_for("auth-success") == "rollback_cohort"
    assert matrix.action_for("fallback") == "freeze"


def test_the_matrix_picks_the_most_severe_failing_gate_and_names_it() -> None:
    matrix = RollbackMatrix.of(make_plan())
    failing = [
        result(Outcome.FAIL, "latency"),
        result(Outcome.FAIL, "auth-success"),
        result(Outcome.FAIL, "parity"),
    ]
    decided = matrix.decide(failing)
    assert decided is not None
    assert (decided[0], decided[1].gate) == ("rollback_cohort", "auth-success")
    assert matrix.decide([]) is None


def test_a_result_for_a_gate_the_plan_lacks_is_treated_as_a_hold() -> None:
    assert RollbackMatrix.of(make_plan()).action_for("unknown") == "hold"


def test_a_result_round_trips_through_plain_json() -> None:
    original = evaluate(0.3, GateSpec.parse("<= 0.25"), gate="latency", at=AT)
    assert GateResult.from_json(original.as_json()) == original
    assert GateResult.from_json(NO_DATA.as_json()) == NO_DATA
