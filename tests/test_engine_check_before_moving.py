"""Check before moving (packets/engine/advance.py, `_shift`): no traffic increase goes out without
a fresh passing reading, taken for that shift, of every gate of the checkpoint about to shift and
of the watched gates."""

from __future__ import annotations

from typing import Any

from packets.engine.effects import Ledger, LedgerKind, ShiftTraffic
from packets.engine.events import CheckpointDone, HoldReleased, Start, Tick
from packets.engine.progress import CheckpointState, RunState
from tests.engine_fixtures import CUTOVER, T0, WarRoom, make_plan, minutes

WIDER: list[dict[str, Any]] = [
    *CUTOVER[:3],
    {
        "id": "wide",
        "title": "A tenth of merchant-a",
        "owner": "release-eng",
        "after": ["widen"],
        "traffic": {"percent": 10, "cohort": "merchant-a"},
        "soak": "20m",
        "gates": ["auth-success", "parity"],
    },
]


def _at_widen() -> WarRoom:
    room = WarRoom.open(make_plan(WIDER)).canary_passed()
    assert room.open_hold_ids() == ["widen/plan/1"]
    return room


def test_the_first_shift_waits_for_a_reading_of_its_gates_taken_for_it() -> None:
    room = WarRoom.open().sign_off().start()
    done = room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    assert done.of(ShiftTraffic) == () and room.cp("canary") is CheckpointState.READY
    checked = room.results("canary", minutes(6), auth_success="pass", latency="pass")
    assert [s.percent for s in checked.of(ShiftTraffic)] == [1]
    (entry,) = [e for e in checked.of(Ledger) if e.kind == LedgerKind.TRAFFIC_SHIFTED]
    assert sorted(g["gate"] for g in entry.payload["cause"]["gates"]) == ["auth-success", "latency"]


def test_releasing_a_hold_moves_no_traffic_until_the_watched_and_next_gates_were_read_again() -> None:
    room = _at_widen()
    room.results("watch", minutes(29), auth_success="pass", latency="pass")  # before the release
    released = room.do(HoldReleased(at=minutes(30), hold_id="widen/plan/1", user="U0REL1"))
    assert released.of(ShiftTraffic) == () and room.cp("wide") is CheckpointState.READY
    room.do(Tick(at=minutes(30)))
    assert room.progress.traffic["merchant-a"] == 1
    checked = room.results("wide", minutes(31), auth_success="pass", parity="pass", latency="pass")
    assert [s.percent for s in checked.of(ShiftTraffic)] == [10]


def test_a_failing_reading_before_a_shift_takes_its_action_and_the_shift_does_not_happen() -> None:
    room = _at_widen()
    room.do(HoldReleased(at=minutes(30), hold_id="widen/plan/1", user="U0REL1"))
    checked = room.results("wide", minutes(31), auth_success="pass", parity="fail", latency="pass")
    assert checked.of(ShiftTraffic) == ()
    assert room.progress.traffic["merchant-a"] == 1
    assert room.state() is RunState.PAUSED  # parity's action
    assert room.progress.paused is not None and "parity" in room.progress.paused.reason


def test_a_watched_gate_left_unread_for_the_shift_keeps_it_waiting() -> None:
    room = _at_widen()
    room.do(HoldReleased(at=minutes(30), hold_id="widen/plan/1", user="U0REL1"))
    # latency is watched (canary moved traffic) but was not read for this shift.
    checked = room.results("wide", minutes(31), auth_success="pass", parity="pass")
    assert checked.of(ShiftTraffic) == ()
    checked = room.results("wide", minutes(32), auth_success="pass", parity="pass", latency="pass")
    assert [s.percent for s in checked.of(ShiftTraffic)] == [10]


def test_a_traffic_step_without_gates_and_nothing_watched_goes_out_at_once() -> None:
    plan = make_plan(
        [{"id": "all", "title": "All", "owner": "release-eng", "traffic": {"percent": 5, "cohort": "x"}}]
    )
    room = WarRoom.open(plan).sign_off()
    started = room.do(Start(at=T0, user="U0REL1"))
    assert [s.percent for s in started.of(ShiftTraffic)] == [5]
