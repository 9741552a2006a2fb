"""Gate results (packets/engine/gates.py): no-data policy, the action each failure takes, severity."""

from __future__ import annotations

import pytest

from packets.authority import Refused
from packets.engine.effects import (
    Ledger,
    LedgerKind,
    Notify,
    OpenHold,
    ShiftTraffic,
)
from packets.engine.events import (
    HoldReleased,
    Resume,
    Unfreeze,
)
from packets.engine.progress import CheckpointState, RunState
from packets.engine.table import Transition
from packets.messages import GateAlert
from tests.engine_fixtures import (
    T0,
    WarRoom,
    make_plan,
    minutes,
)


@pytest.mark.parametrize(("policy", "counts_as"), [("fail", "fail"), ("pass", "pass"), ("ignore", "ignore")])
def test_no_data_counts_as_failure_unless_the_gate_policy_says_otherwise(policy: str, counts_as: str) -> None:
    plan = make_plan(policy={"consecutive_passes": 1, "no_data": policy})
    room = WarRoom.open(plan).canary_running()
    transition = room.results("canary", minutes(30), auth_success="pass", latency="no-data")
    if counts_as == "fail":
        assert room.progress.state is RunState.HELD and transition.of(OpenHold)
    elif counts_as == "pass":
        assert room.cp("canary") is CheckpointState.DONE
    else:
        assert room.cp("canary") is CheckpointState.SOAKING and room.progress.state is RunState.RUNNING
        assert room.progress.checkpoints["canary"].evidence["latency"] == ()


def _gated() -> WarRoom:
    checkpoints = [
        {
            "id": "canary",
            "title": "Canary",
            "owner": "release-eng",
            "soak": "10m",
            "traffic": {"percent": 5, "cohort": "merchant-a"},
            "gates": ["auth-success", "latency", "parity", "fallback", "doom"],
        },
    ]
    room = WarRoom.open(make_plan(checkpoints)).sign_off().start()
    # Check before moving: every gate read for the shift, then 5 % goes out.
    room.results(
        "canary", T0, auth_success="pass", latency="pass", parity="pass", fallback="pass", doom="pass"
    )
    room.confirm_shifts(minutes(1))
    return room


def test_a_pause_gate_stops_advancing_until_an_authority_resumes() -> None:
    room = _gated()
    room.results("canary", minutes(2), parity="fail")
    assert room.progress.state is RunState.PAUSED
    assert room.progress.paused is not None and room.progress.paused.by == "gate:parity"
    with pytest.raises(Refused):
        room.do(Resume(at=minutes(3), user="U0SEC1"))
    room.do(Resume(at=minutes(3), user="U0ENG1"))
    assert room.state() is RunState.RUNNING


def test_a_hold_gate_holds_the_checkpoint_without_moving_traffic() -> None:
    room = _gated()
    transition = room.results("canary", minutes(2), latency="fail")
    assert transition.of(ShiftTraffic) == ()
    assert room.progress.state is RunState.HELD and room.cp("canary") is CheckpointState.SOAKING


def test_a_rollback_cohort_gate_shifts_the_cohort_to_its_previous_percent_then_holds() -> None:
    room = _gated()
    transition = room.results("canary", minutes(2), auth_success="fail")
    (shift,) = transition.of(ShiftTraffic)
    assert (shift.percent, shift.previous_percent) == (0, 5)
    ledger = [e for e in transition.of(Ledger) if e.kind == LedgerKind.TRAFFIC_SHIFTED]
    assert ledger[0].actor == "gate:auth-success"
    assert ledger[0].payload["cause"]["gates"][0]["outcome"] == "fail"
    assert room.progress.state is RunState.HELD


def test_a_global_rollback_gate_takes_all_traffic_back_and_the_run_ends_rolled_back() -> None:
    room = _gated()
    transition = room.results("canary", minutes(2), doom="fail")
    assert [s.percent for s in transition.of(ShiftTraffic)] == [0]
    room.confirm_shifts(minutes(3))
    assert room.progress.state is RunState.ROLLED_BACK
    assert room.progress.traffic == {"merchant-a": 0}


def test_a_freeze_gate_forbids_traffic_changes_until_an_authority_unfreezes() -> None:
    room = _gated()
    room.results("canary", minutes(2), fallback="fail")
    assert room.progress.state is RunState.FROZEN
    quiet = room.results("canary", minutes(3), doom="fail")
    assert quiet.of(ShiftTraffic) == ()
    with pytest.raises(Refused):
        room.do(Unfreeze(at=minutes(4), user="U0SEC1"))
    room.do(Unfreeze(at=minutes(4), user="U0REL1"))
    assert room.state() is RunState.RUNNING


def test_the_most_severe_action_wins_when_several_gates_fail_at_once() -> None:
    room = _gated()
    transition = room.results(
        "canary", minutes(2), parity="fail", latency="fail", auth_success="fail", fallback="fail"
    )
    assert room.progress.state is RunState.FROZEN  # freeze outranks pause, hold and rollback_cohort
    assert transition.of(ShiftTraffic) == ()
    (failed,) = [e for e in transition.of(Ledger) if e.kind == LedgerKind.GATE_FAILED]
    assert (failed.actor, failed.payload["action"]) == ("gate:fallback", "freeze")


def test_results_for_a_checkpoint_not_in_flight_change_nothing_but_are_recorded() -> None:
    room = WarRoom.open().canary_running()
    before = room.progress
    transition = room.results("prep", minutes(6), latency="fail")
    assert transition.progress == before
    assert room.ledger_kinds(transition) == [LedgerKind.GATE_RESULTS_IGNORED]


def _alerts(transition: Transition) -> list[GateAlert]:
    return [n.message for n in transition.of(Notify) if isinstance(n.message, GateAlert)]


def test_a_gate_failing_minute_after_minute_is_told_once_while_the_hold_it_opened_stands() -> None:
    room = _gated()
    first = room.results("canary", minutes(2), latency="fail")
    again = [room.results("canary", minutes(2 + n), latency="fail") for n in range(1, 5)]

    assert [a.gate for a in _alerts(first)] == ["latency"]
    assert [_alerts(t) for t in again] == [[]] * 4, "the hold it asked for stands: nothing new to tell"
    assert all(LedgerKind.GATE_FAILED in room.ledger_kinds(t) for t in again), "every reading is ledgered"
    (hold,) = room.open_hold_ids()

    room.do(HoldReleased(at=minutes(7), hold_id=hold, user="U0REL1"))
    still = room.results("canary", minutes(8), latency="fail")
    assert [a.gate for a in _alerts(still)] == ["latency"], "released while it still fails: a new hold, told"
    room.results("canary", minutes(9), latency="pass")
    (held,) = room.open_hold_ids()
    room.do(HoldReleased(at=minutes(10), hold_id=held, user="U0REL1"))
    assert [a.gate for a in _alerts(room.results("canary", minutes(11), latency="fail"))] == ["latency"]


def test_a_gate_failing_through_a_freeze_is_told_when_it_starts_not_at_every_reading() -> None:
    room = _gated()
    room.results("canary", minutes(2), fallback="fail")  # freezes the run
    started = room.results("canary", minutes(3), latency="fail")
    goes_on = room.results("canary", minutes(4), latency="fail")

    assert [(a.gate, a.taken) for a in _alerts(started)] == [("latency", False)]
    assert _alerts(goes_on) == []
