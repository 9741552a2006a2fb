"""Checkpoint windows at run time: the boundary in force (the adopted packet's) is honoured."""

from __future__ import annotations

from typing import Any

import pytest

from packets.authority import Refused
from packets.engine.effects import Notify
from packets.engine.events import CheckpointDone, HoldReleased, Tick
from packets.engine.progress import CheckpointState, RunState
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


# The replication runs by hand (its owner says done) inside 21:10-21:40; the switch follows it.
RUNNING_LATE: list[dict[str, Any]] = [
    {"id": "prep", "title": "Prepare", "owner": "release-eng"},
    {
        "id": "replicate",
        "title": "Replicate the keys",
        "owner": "security",
        "after": ["prep"],
        "duration": "20m",
        "protected": True,
        "window": {"not_before": minutes(10).isoformat(), "not_after": minutes(40).isoformat()},
    },
    {"id": "switch", "title": "Switch the reads", "owner": "release-eng", "after": ["replicate"]},
]


def replication_running() -> WarRoom:
    plan = make_plan(RUNNING_LATE)
    room = WarRoom.open(plan).sign_off().start()
    room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    room.do(Tick(at=minutes(10)))
    (plan_hold,) = room.open_hold_ids()
    room.do(HoldReleased(at=minutes(12), hold_id=plan_hold, user="U0REL1"))
    assert room.cp("replicate") is CheckpointState.ACTIVE
    return room


def overrun_holds(room: WarRoom) -> list[Any]:
    return [h for h in room.progress.holds.values() if "past its not_after" in h.reason]


def test_a_checkpoint_still_running_when_its_not_after_passes_is_held_and_its_owner_told() -> None:
    room = replication_running()
    room.do(Tick(at=minutes(40)))
    assert overrun_holds(room) == []  # on the boundary is not past it
    room.do(Tick(at=minutes(41)))

    (hold,) = overrun_holds(room)
    assert hold.checkpoint == "replicate" and hold.source is HoldSource.CONFLICT
    assert "2026-11-24T21:40:00-05:00" in hold.reason
    # Released under the checkpoint's own rule: protected without a hold of its own, the release
    # authority's (a `mode: all` hold keeps two people, as the conflict tests above show).
    assert (hold.release_by, hold.mode) == (("release-authority",), "any")
    assert room.state() is RunState.HELD
    told = [e for e in room.last.of(Notify) if e.direct] if room.last else []
    assert [(n.message.state, n.users) for n in told] == [("running past its window", ("U0SEC1",))]


def test_what_follows_an_overrun_waits_until_it_is_released_and_it_is_raised_once() -> None:
    room = replication_running()
    room.do(Tick(at=minutes(41)))
    (hold,) = overrun_holds(room)
    # Its owner finishes while held; the switch still waits for the decision.
    room.do(CheckpointDone(at=minutes(45), checkpoint="replicate", user="U0SEC1"))
    assert room.cp("replicate") is CheckpointState.DONE
    assert room.cp("switch") is CheckpointState.PENDING
    with pytest.raises(Refused):
        room.do(HoldReleased(at=minutes(46), hold_id=hold.id, user="U0RISK1"))  # not their call
    room.do(HoldReleased(at=minutes(47), hold_id=hold.id, user="U0REL1"))
    assert room.cp("switch") is CheckpointState.ACTIVE
    room.do(Tick(at=minutes(50)))
    assert len(overrun_holds(room)) == 1
