"""Walking the timeline (packets/engine/advance.py): soaks, consecutive passes, not-before, done by hand."""

from __future__ import annotations

import pytest

from packets.authority import Refused
from packets.engine.effects import (
    Ledger,
    LedgerKind,
)
from packets.engine.errors import IllegalTransition
from packets.engine.events import (
    CheckpointDone,
    HoldReleased,
    Tick,
)
from packets.engine.progress import CheckpointState, RunState
from tests.engine_fixtures import (
    WarRoom,
    make_plan,
    minutes,
)


def test_a_checkpoint_with_gates_completes_only_after_its_soak_and_consecutive_passes() -> None:
    room = WarRoom.open().canary_running()
    room.results("canary", minutes(10), auth_success="pass", latency="pass")
    room.do(Tick(at=minutes(30)))
    assert room.cp("canary") is CheckpointState.SOAKING  # one pass of two
    room.results("canary", minutes(31), auth_success="pass", latency="fail")
    room.do(HoldReleased(at=minutes(32), hold_id=room.open_hold_ids()[0], user="U0REL1"))
    room.results("canary", minutes(33), auth_success="pass", latency="pass")
    room.do(Tick(at=minutes(34)))
    assert room.cp("canary") is CheckpointState.SOAKING  # the fail broke latency's streak
    transition = room.results("canary", minutes(35), auth_success="pass", latency="pass")
    assert room.cp("canary") is CheckpointState.DONE
    (completed,) = [e for e in transition.of(Ledger) if e.kind == LedgerKind.CHECKPOINT_COMPLETED]
    assert [(g["gate"], g["outcome"]) for g in completed.payload["gates"]] == [
        ("auth-success", "pass"),
        ("auth-success", "pass"),
        ("latency", "pass"),
        ("latency", "pass"),
    ]


def test_a_soaked_checkpoint_does_not_complete_before_its_soak_elapsed() -> None:
    room = WarRoom.open().canary_running()
    room.results("canary", minutes(6), auth_success="pass", latency="pass")
    room.results("canary", minutes(7), auth_success="pass", latency="pass")
    room.do(Tick(at=minutes(24)))
    assert room.cp("canary") is CheckpointState.SOAKING
    room.do(Tick(at=minutes(25)))
    assert room.cp("canary") is CheckpointState.DONE


def test_a_traffic_checkpoint_without_gates_is_completed_by_its_owner_after_its_soak() -> None:
    checkpoints = [
        {
            "id": "drain",
            "title": "Drain",
            "owner": "release-eng",
            "soak": "10m",
            "traffic": {"percent": 10, "cohort": "merchant-a"},
        }
    ]
    room = WarRoom.open(make_plan(checkpoints)).sign_off().start()
    room.confirm_shifts(minutes(0))
    room.do(Tick(at=minutes(30)))
    assert room.cp("drain") is CheckpointState.SOAKING  # no thresholds, no autonomy
    with pytest.raises(IllegalTransition, match="soaks until"):
        room.do(CheckpointDone(at=minutes(5), checkpoint="drain", user="U0ENG1"))
    with pytest.raises(Refused, match=r"release-eng \(acting: U0ENG1\)"):
        room.do(CheckpointDone(at=minutes(11), checkpoint="drain", user="U0REL1"))
    room.do(CheckpointDone(at=minutes(11), checkpoint="drain", user="U0ENG1"))
    assert room.progress.state is RunState.COMPLETED


def test_a_gated_checkpoint_is_not_marked_done_by_hand() -> None:
    room = WarRoom.open().canary_running()
    with pytest.raises(IllegalTransition, match="gates pass"):
        room.do(CheckpointDone(at=minutes(40), checkpoint="canary", user="U0ENG1"))


def test_a_checkpoint_waits_for_its_not_before() -> None:
    checkpoints = [
        {
            "id": "late",
            "title": "Late",
            "owner": "release-eng",
            "window": {"not_before": minutes(30).isoformat()},
        }
    ]
    room = WarRoom.open(make_plan(checkpoints)).sign_off().start()
    assert room.cp("late") is CheckpointState.READY
    room.do(Tick(at=minutes(29)))
    assert room.cp("late") is CheckpointState.READY
    room.do(Tick(at=minutes(30)))
    assert room.cp("late") is CheckpointState.ACTIVE
