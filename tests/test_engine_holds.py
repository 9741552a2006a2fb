"""Holds (packets/engine/holds.py): who may release, mode all, protected checkpoints, conflicts."""

from __future__ import annotations

import pytest

from packets.authority import Refused
from packets.engine.effects import (
    CloseHold,
    Ledger,
    LedgerKind,
    OpenHold,
    ShiftTraffic,
)
from packets.engine.errors import IllegalTransition
from packets.engine.events import (
    CheckpointDone,
    HoldReleased,
    PacketAdopted,
    ReleaseWithdrawn,
    RollbackRequested,
    Start,
)
from packets.engine.progress import CheckpointState, RunState
from packets.packet import HoldSource
from tests.engine_fixtures import (
    ROLES,
    T0,
    WarRoom,
    make_packet,
    make_plan,
    minutes,
)


def test_a_hold_checkpoint_is_released_only_by_the_acting_user_of_its_release_role() -> None:
    room = WarRoom.open().canary_passed()
    with pytest.raises(Refused, match=r"release-authority \(acting: U0REL1\)"):
        room.do(HoldReleased(at=minutes(30), hold_id="widen/plan/1", user="U0REL2"))
    with pytest.raises(Refused):
        room.do(HoldReleased(at=minutes(30), hold_id="widen/plan/1", user="U0ENG1"))
    assert room.open_hold_ids() == ["widen/plan/1"]
    room.do(HoldReleased(at=minutes(30), hold_id="widen/plan/1", user="U0REL1"))
    assert room.cp("widen") is CheckpointState.DONE


def test_a_delegate_release_names_the_primary_it_acts_for() -> None:
    room = WarRoom.open().canary_passed()
    room.roster = room.roster.switch(
        by_user="U0REL1", role="release-authority", to_user="U0REL2", change_roles=["release-authority"]
    )
    transition = room.do(HoldReleased(at=minutes(30), hold_id="widen/plan/1", user="U0REL2"))
    (released,) = [e for e in transition.of(Ledger) if e.kind == LedgerKind.HOLD_RELEASED]
    assert (released.actor, released.payload["role"], released.payload["acting_for"]) == (
        "U0REL2",
        "release-authority",
        "U0REL1",
    )


def test_a_hold_in_mode_all_needs_a_different_person_for_each_role() -> None:
    room = WarRoom.open().canary_passed()
    room.do(HoldReleased(at=minutes(30), hold_id="widen/plan/1", user="U0REL1"))
    (retire,) = room.open_hold_ids()
    partial = room.do(HoldReleased(at=minutes(31), hold_id=retire, user="U0REL1"))
    assert room.ledger_kinds(partial) == [LedgerKind.HOLD_RELEASE_RECORDED]
    assert partial.of(CloseHold) == ()
    with pytest.raises(Refused, match="different person"):
        room.do(HoldReleased(at=minutes(32), hold_id=retire, user="U0REL1"))
    transition = room.do(HoldReleased(at=minutes(33), hold_id=retire, user="U0RISK1"))
    assert transition.of(CloseHold)[0].by == ("U0REL1", "U0RISK1")
    assert room.progress.state is RunState.COMPLETED


def test_a_person_may_take_back_their_own_release_of_a_mode_all_hold_while_it_is_open() -> None:
    room = WarRoom.open().canary_passed()
    room.do(HoldReleased(at=minutes(30), hold_id="widen/plan/1", user="U0REL1"))
    (retire,) = room.open_hold_ids()
    room.do(HoldReleased(at=minutes(31), hold_id=retire, user="U0REL1"))

    taken = room.do(ReleaseWithdrawn(at=minutes(32), hold_id=retire, user="U0REL1"))

    (entry,) = taken.of(Ledger)
    assert entry.kind == LedgerKind.HOLD_RELEASE_WITHDRAWN and entry.actor == "U0REL1"
    assert entry.payload["remaining"] == ["release-authority", "payments-risk"]
    assert room.progress.holds[retire].releases == ()
    # The second person alone no longer completes it: the release authority must release again.
    room.do(HoldReleased(at=minutes(33), hold_id=retire, user="U0RISK1"))
    assert room.open_hold_ids() == [retire] and room.state() is RunState.HELD
    room.do(HoldReleased(at=minutes(34), hold_id=retire, user="U0REL1"))
    assert room.state() is RunState.COMPLETED


def test_only_ones_own_release_of_an_open_hold_can_be_taken_back() -> None:
    room = WarRoom.open().canary_passed()
    room.do(HoldReleased(at=minutes(30), hold_id="widen/plan/1", user="U0REL1"))
    (retire,) = room.open_hold_ids()
    room.do(HoldReleased(at=minutes(31), hold_id=retire, user="U0REL1"))
    with pytest.raises(Refused, match="no release of yours"):
        room.do(ReleaseWithdrawn(at=minutes(32), hold_id=retire, user="U0RISK1"))
    room.do(HoldReleased(at=minutes(33), hold_id=retire, user="U0RISK1"))
    with pytest.raises(Refused, match="already released"):
        room.do(ReleaseWithdrawn(at=minutes(34), hold_id=retire, user="U0REL1"))


def test_one_person_acting_for_both_roles_of_a_mode_all_hold_cannot_release_it_alone() -> None:
    roles = {**ROLES, "payments-risk": {"primary": "U0RISK1", "delegates": ["U0REL2"]}}
    room = WarRoom.open(make_plan(roles=roles)).canary_passed()
    room.do(HoldReleased(at=minutes(30), hold_id="widen/plan/1", user="U0REL1"))
    (retire,) = room.open_hold_ids()
    for role in ("release-authority", "payments-risk"):
        room.roster = room.roster.switch(
            by_user=room.roster.acting_user("release-authority"),
            role=role,
            to_user="U0REL2",
            change_roles=["release-authority"],
        )
    room.do(HoldReleased(at=minutes(31), hold_id=retire, user="U0REL2"))
    with pytest.raises(Refused, match="different person"):
        room.do(HoldReleased(at=minutes(32), hold_id=retire, user="U0REL2"))
    assert room.open_hold_ids() == [retire]


def test_a_protected_checkpoint_is_held_even_when_every_gate_is_green() -> None:
    checkpoints = [
        {"id": "verify", "title": "Verify", "owner": "release-eng", "protected": True, "gates": ["latency"]},
    ]
    room = WarRoom.open(make_plan(checkpoints), make_packet(make_plan(checkpoints), register=False))
    room.sign_off().start()
    assert room.cp("verify") is CheckpointState.HELD
    (hold,) = room.progress.open_holds()
    assert hold.source is HoldSource.PLAN and hold.release_by == ("release-authority",)
    room.do(HoldReleased(at=minutes(1), hold_id=hold.id, user="U0REL1"))
    room.results("verify", minutes(2), latency="pass")
    room.results("verify", minutes(3), latency="pass")
    assert room.progress.state is RunState.COMPLETED


def test_a_protected_traffic_checkpoint_shifts_only_after_its_hold_is_released() -> None:
    checkpoints = [
        {
            "id": "all-in",
            "title": "All traffic",
            "owner": "release-eng",
            "protected": True,
            "traffic": {"percent": 100, "cohort": "everyone"},
            "gates": ["auth-success"],
        },
    ]
    plan = make_plan(checkpoints)
    room = WarRoom.open(plan, make_packet(plan))
    started = room.sign_off().do(Start(at=T0, user="U0REL1"))
    assert started.of(ShiftTraffic) == ()
    (hold,) = room.open_hold_ids()
    released = room.do(HoldReleased(at=minutes(1), hold_id=hold, user="U0REL1"))
    assert released.of(ShiftTraffic) == ()  # check before moving: a reading taken for the shift
    checked = room.results("all-in", minutes(2), auth_success="pass")
    assert [s.percent for s in checked.of(ShiftTraffic)] == [100]


def test_a_conflict_hold_in_the_packet_must_be_released_before_its_checkpoint_runs() -> None:
    plan = make_plan()
    room = WarRoom.open(plan).sign_off().start()
    v2 = make_packet(plan, version=2, conflicts={"canary": "canary cannot fit before 22:00"})
    room.do(PacketAdopted(at=minutes(1), version=2, user="U0REL1"), packet=v2)
    room.packet = v2
    transition = room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    assert transition.of(ShiftTraffic) == ()
    (hold,) = room.progress.open_holds()
    assert hold.source is HoldSource.CONFLICT and hold.reason == "canary cannot fit before 22:00"
    room.do(HoldReleased(at=minutes(6), hold_id=hold.id, user="U0REL1"))
    checked = room.results("canary", minutes(7), auth_success="pass", latency="pass")
    assert [s.percent for s in checked.of(ShiftTraffic)] == [1]


def test_a_conflict_gained_while_a_checkpoint_waits_on_its_plan_hold_holds_it_as_well() -> None:
    room = WarRoom.open().canary_passed()
    v2 = make_packet(room.plan, version=2, conflicts={"widen": "widen no longer fits before 23:00"})
    room.do(PacketAdopted(at=minutes(28), version=2, user="U0REL1"), packet=v2)
    room.packet = v2
    transition = room.do(HoldReleased(at=minutes(29), hold_id="widen/plan/1", user="U0REL1"))
    (conflict,) = transition.of(OpenHold)
    assert conflict.hold.source is HoldSource.CONFLICT and room.cp("widen") is CheckpointState.HELD
    room.do(HoldReleased(at=minutes(30), hold_id=conflict.hold.id, user="U0REL1"))
    assert room.cp("widen") is CheckpointState.DONE


def test_a_retried_checkpoint_waits_on_a_conflict_its_packet_gained_while_it_ran() -> None:
    room = WarRoom.open().canary_running()
    v2 = make_packet(room.plan, version=2, conflicts={"canary": "canary overruns its window"})
    room.do(PacketAdopted(at=minutes(6), version=2, user="U0REL1"), packet=v2)
    room.packet = v2
    assert room.cp("canary") is CheckpointState.SOAKING  # running already: the conflict does not stop it
    room.do(RollbackRequested(at=minutes(7), user="U0REL1", scope="cohort", reason="retry"))
    transition = room.do(HoldReleased(at=minutes(8), hold_id=room.open_hold_ids()[0], user="U0REL1"))
    assert transition.of(ShiftTraffic) == ()
    (conflict,) = room.progress.open_holds()
    assert conflict.source is HoldSource.CONFLICT


def test_a_protected_checkpoint_past_its_window_says_so_in_its_hold() -> None:
    checkpoints = [
        {
            "id": "replicate",
            "title": "Replicate keys",
            "owner": "release-eng",
            "protected": True,
            "window": {"not_after": minutes(10).isoformat()},
        }
    ]
    plan = make_plan(checkpoints)
    room = WarRoom.open(plan, make_packet(plan, register=False)).sign_off().start(at=minutes(20))
    (hold,) = [h for h in room.progress.open_holds() if h.source is HoldSource.PLAN]
    assert "not_after" in hold.reason
    # Past its not_after it cannot finish by it either: a conflict hold as well (issue 12).
    assert [h.source for h in room.progress.open_holds()] == [HoldSource.PLAN, HoldSource.CONFLICT]


def test_a_hold_release_of_an_unknown_or_closed_hold_is_illegal() -> None:
    room = WarRoom.open().canary_passed()
    with pytest.raises(IllegalTransition, match="no hold nope"):
        room.do(HoldReleased(at=minutes(30), hold_id="nope", user="U0REL1"))
