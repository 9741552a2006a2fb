"""Checkpoint windows at run time: the boundary in force (the adopted packet's) is honoured."""

from __future__ import annotations

from typing import Any

import pytest

from packets.authority import Refused
from packets.engine.events import CheckpointDone, HoldReleased, Tick
from packets.engine.progress import CheckpointState
from packets.packet import HoldSource, Packet, PacketState
from packets.plan import CheckpointWindow, Plan
from packets.timeline import Facts, build_packet
from tests.engine_fixtures import WarRoom, make_plan, minutes

# The plan lets the migration run 21:30-23:00; the war room narrowed it to 21:45-22:20.
MIGRATION: list[dict[str, Any]] = [
    {"id": "prep", "title": "Prepare", "owner": "release-eng"},
    {
        "id": "migrate",
        "title": "Migrate the vault",
        "owner": "release-eng",
        "after": ["prep"],
        "duration": "30m",
        "protected": True,
        "hold": {"release_by": ["release-authority", "payments-risk"], "mode": "all"},
        "window": {"not_before": minutes(30).isoformat(), "not_after": minutes(120).isoformat()},
    },
]
NARROWED = CheckpointWindow(not_before=minutes(45), not_after=minutes(80))


def narrowed_packet(plan: Plan) -> Packet:
    """The authoritative packet built from the plan and the adopted window change."""
    facts = Facts().move_window("migrate", NARROWED)
    return build_packet(
        plan, facts, version=2, supersedes=1, reason="window", acting={}, state=PacketState.AUTHORITATIVE
    )


def room_with_narrowed_window() -> WarRoom:
    plan = make_plan(MIGRATION)
    room = WarRoom.open(plan, narrowed_packet(plan)).sign_off().start()
    room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    return room


def test_the_packet_carries_the_window_in_force_not_the_plans() -> None:
    planned = narrowed_packet(make_plan(MIGRATION)).checkpoint("migrate")
    assert (planned.not_before, planned.not_after) == (minutes(45), minutes(80))
    assert Packet.from_json(narrowed_packet(make_plan(MIGRATION)).as_json()).checkpoint("migrate") == planned


def test_a_checkpoint_never_starts_before_the_adopted_narrowed_not_before() -> None:
    room = room_with_narrowed_window()
    room.do(Tick(at=minutes(31)))  # past the plan's 21:30, before the adopted 21:45
    assert room.cp("migrate") is CheckpointState.READY
    assert room.open_hold_ids() == []
    room.do(Tick(at=minutes(44)))
    assert room.cp("migrate") is CheckpointState.READY
    room.do(Tick(at=minutes(45)))
    assert room.cp("migrate") is CheckpointState.HELD  # its turn: its plan hold opens


def test_a_protected_checkpoint_that_cannot_finish_by_the_adopted_not_after_gets_a_conflict_hold_first() -> (
    None
):
    room = room_with_narrowed_window()
    room.do(Tick(at=minutes(60)))  # 22:00 + 30m = 22:30, past the adopted 22:20 (the plan said 23:00)
    assert room.cp("migrate") is CheckpointState.HELD
    (conflict,) = [h for h in room.progress.open_holds() if h.source is HoldSource.CONFLICT]
    assert "cannot finish by its not_after 2026-11-24T22:20:00-05:00" in conflict.reason
    assert (conflict.release_by, conflict.mode) == (("release-authority", "payments-risk"), "all")


def test_a_conflict_hold_in_mode_all_is_not_released_by_one_person() -> None:
    room = room_with_narrowed_window()
    room.do(Tick(at=minutes(60)))
    (conflict,) = [h for h in room.progress.open_holds() if h.source is HoldSource.CONFLICT]
    room.do(HoldReleased(at=minutes(61), hold_id=conflict.id, user="U0REL1"))
    assert conflict.id in room.open_hold_ids()
    with pytest.raises(Refused):
        room.do(HoldReleased(at=minutes(61), hold_id=conflict.id, user="U0REL1"))
    room.do(HoldReleased(at=minutes(62), hold_id=conflict.id, user="U0RISK1"))
    assert conflict.id not in room.open_hold_ids()


def test_a_protected_checkpoint_that_fits_its_adopted_window_gets_no_conflict_hold() -> None:
    room = room_with_narrowed_window()
    room.do(Tick(at=minutes(50)))  # 21:50 + 30m = 22:20: exactly on time
    assert [h.source for h in room.progress.open_holds()] == [HoldSource.PLAN]
