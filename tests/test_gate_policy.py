"""Per-gate policy (issue 13): `for`, `failure_limit`, readiness gates, no-data that holds, and
each gate's own interval, consecutive passes and no-data policy over the plan's `gate_policy`."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from packets.engine.effects import OpenHold, ShiftTraffic
from packets.engine.progress import CheckpointState, RunState
from packets.gates import GateTally, Outcome, RollbackMatrix
from packets.plan import Plan
from tests.engine_fixtures import GATES, WarRoom, make_plan, minutes


def _plan(**auth_success: Any) -> Plan:
    """The miniature cutover with the canary's auth-success gate given its own policy."""
    gates = copy.deepcopy(GATES)
    gates["auth-success"].update(auth_success)
    return make_plan(gates=gates)


def test_a_gate_takes_its_own_policy_over_the_plan_defaults() -> None:
    plan = _plan(interval="5m", consecutive_passes=4, no_data="ignore", failure_limit=2, **{"for": "10m"})
    own = plan.gate_policy_of("auth-success")
    assert (own.interval, own.consecutive_passes, own.no_data) == (timedelta(minutes=5), 4, "ignore")
    assert (own.lasting, own.tolerated) == (timedelta(minutes=10), 2)
    other = plan.gate_policy_of("latency")
    assert (other.interval, other.consecutive_passes, other.lasting, other.tolerated) == (
        timedelta(minutes=1),
        2,
        timedelta(0),
        0,
    )


def test_a_two_minute_blip_does_not_pause_a_gate_that_acts_only_after_ten_minutes() -> None:
    room = WarRoom.open(_plan(on_fail="pause", **{"for": "10m"})).canary_running()
    room.results("canary", minutes(6), auth_success="fail", latency="pass")
    room.results("canary", minutes(7), auth_success="fail", latency="pass")
    room.results("canary", minutes(8), auth_success="pass", latency="pass")
    assert room.progress.state is RunState.RUNNING and room.progress.paused is None
    # The blip reset: failing again from minute 9, it acts only once it has failed for 10 minutes.
    for m in range(9, 19):
        room.results("canary", minutes(m), auth_success="fail", latency="pass")
        assert room.progress.paused is None, f"paused after {m - 9} minutes of failing"
    room.results("canary", minutes(19), auth_success="fail", latency="pass")
    assert room.progress.state is RunState.PAUSED
    assert room.progress.paused is not None and room.progress.paused.by == "gate:auth-success"


def test_a_failure_limit_tolerates_that_many_failing_readings_in_the_stage_then_acts() -> None:
    room = WarRoom.open(_plan(on_fail="hold", failure_limit=2)).canary_running()
    room.results("canary", minutes(6), auth_success="fail", latency="pass")
    room.results("canary", minutes(7), auth_success="pass", latency="pass")
    # Passes in between do not reset the count: the limit is of the stage's failures (failureLimit).
    transition = room.results("canary", minutes(8), auth_success="fail", latency="pass")
    assert room.progress.state is RunState.RUNNING and not transition.of(OpenHold)
    assert room.progress.checkpoints["canary"].tallies["auth-success"].failures == 2
    transition = room.results("canary", minutes(9), auth_success="fail", latency="pass")
    assert room.progress.state is RunState.HELD and transition.of(OpenHold)


def test_a_readiness_gate_still_gathering_passes_is_not_a_failure() -> None:
    plan = _plan(kind="readiness", timeout="30m", consecutive_passes=12, on_fail="hold")
    room = WarRoom.open(plan).canary_running()
    room.results("canary", minutes(6), auth_success="fail", latency="pass")
    for m in range(7, 17):
        room.results("canary", minutes(m), auth_success="pass", latency="pass")
    # 10 of 12 passes after a not-yet-ready reading: waiting, not held, and not complete either.
    assert room.progress.state is RunState.RUNNING and not room.open_hold_ids()
    assert room.cp("canary") is CheckpointState.SOAKING
    assert not room.progress.checkpoints["canary"].tallies["auth-success"].ready


def test_a_readiness_gate_keeps_the_checkpoint_waiting_and_acts_at_its_timeout() -> None:
    plan = _plan(kind="readiness", timeout="15m", on_fail="hold")
    room = WarRoom.open(plan).canary_running()  # the canary's attempt began at minute 5
    for m in range(6, 20):
        transition = room.results("canary", minutes(m), auth_success="fail", latency="pass")
        assert not transition.of(OpenHold), f"held at minute {m}, before the timeout"
    transition = room.results("canary", minutes(20), auth_success="fail", latency="pass")
    assert room.progress.state is RunState.HELD and transition.of(OpenHold)


def test_a_readiness_gate_once_ready_fails_like_any_gate() -> None:
    plan = _plan(kind="readiness", timeout="15m", on_fail="hold")
    room = WarRoom.open(plan).canary_running()
    room.results("canary", minutes(6), auth_success="pass", latency="pass")
    room.results("canary", minutes(7), auth_success="pass", latency="pass")
    assert room.progress.checkpoints["canary"].tallies["auth-success"].ready
    transition = room.results("canary", minutes(8), auth_success="fail", latency="pass")
    assert room.progress.state is RunState.HELD and transition.of(OpenHold)


def test_no_data_on_a_gate_whose_policy_is_hold_holds_instead_of_rolling_back() -> None:
    room = WarRoom.open(_plan(on_fail="rollback_cohort", no_data="hold")).canary_running()
    transition = room.results("canary", minutes(6), auth_success="no-data", latency="pass")
    assert room.progress.state is RunState.HELD and transition.of(OpenHold)
    assert not transition.of(ShiftTraffic), "no-data must not roll the cohort back"
    assert RollbackMatrix.of(room.plan).action_for("auth-success", Outcome.FAIL) == "rollback_cohort"


def test_a_gate_with_its_own_consecutive_passes_completes_on_its_own_streak() -> None:
    room = WarRoom.open(_plan(consecutive_passes=3)).canary_running()
    room.results("canary", minutes(10), auth_success="pass", latency="pass")
    room.results("canary", minutes(11), auth_success="pass", latency="pass")
    room.results("canary", minutes(26), auth_success="pass", latency="pass")
    assert room.cp("canary") is CheckpointState.DONE
    room2 = WarRoom.open(_plan(consecutive_passes=4)).canary_running()
    room2.results("canary", minutes(10), auth_success="pass", latency="pass")
    room2.results("canary", minutes(11), auth_success="pass", latency="pass")
    room2.results("canary", minutes(26), auth_success="pass", latency="pass")
    assert room2.cp("canary") is not CheckpointState.DONE


def test_a_tally_survives_the_progress_json_and_a_clean_run_writes_none() -> None:
    room = WarRoom.open(_plan(failure_limit=5)).canary_running()
    before = room.progress.as_json()
    assert "tallies" not in before["checkpoints"]["canary"]
    room.results("canary", minutes(6), auth_success="fail", latency="pass")
    again = type(room.progress).from_json(room.progress.as_json())
    assert again.checkpoints["canary"].tallies["auth-success"] == GateTally(
        failures=1, failing_since=minutes(6), ready=False
    )
