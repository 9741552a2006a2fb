"""Hyper-care (packets/engine/hypercare.py): the cadence after the last checkpoint, and what it allows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from packets.engine.effects import (
    Ledger,
    LedgerKind,
    Notify,
    ScheduleGateChecks,
    ShiftTraffic,
    StopGateChecks,
)
from packets.engine.errors import IllegalTransition
from packets.engine.events import (
    Abort,
    CheckpointDone,
    Freeze,
    HoldOpened,
    HoldReleased,
    Pause,
    Resume,
    RollbackRequested,
    Tick,
    Unfreeze,
)
from packets.engine.progress import CheckpointState, RunState
from packets.messages import RunStateLine
from tests.engine_fixtures import (
    GATES,
    HC_END,
    HYPERCARE,
    HYPERCARE_CUTOVER,
    WarRoom,
    hypercare_room,
    make_plan,
    minutes,
    reach,
)

# == hyper-care ==================================================================================


def test_without_hyper_care_the_run_completes_with_its_last_checkpoint() -> None:
    room = WarRoom.open(make_plan(HYPERCARE_CUTOVER))
    room.sign_off().start()
    room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    room.results("canary", minutes(5), auth_success="pass", latency="pass")
    room.confirm_shifts(minutes(5))
    room.results("canary", minutes(6), auth_success="pass", latency="pass")
    room.results("canary", minutes(7), auth_success="pass", latency="pass")
    room.do(Tick(at=minutes(15)))
    room.results("full", minutes(15), auth_success="pass", latency="pass")
    room.confirm_shifts(minutes(15))
    room.results("full", minutes(16), auth_success="pass", latency="pass")
    room.results("full", minutes(17), auth_success="pass", latency="pass")
    transition = room.do(Tick(at=minutes(25)))
    assert room.state() is RunState.COMPLETED and room.progress.hypercare_since is None
    assert StopGateChecks(checkpoint=None) in transition.effects


def test_with_hyper_care_the_last_checkpoint_starts_hyper_care_instead_of_completing_the_run() -> None:
    room = hypercare_room()
    room.in_hypercare()
    assert room.last is not None
    transition = room.last
    assert room.progress.hypercare_since == minutes(25)
    assert room.progress.ended_at is None
    assert all(c.state is CheckpointState.DONE for c in room.progress.checkpoints.values())
    assert transition.of(ScheduleGateChecks) == (
        ScheduleGateChecks(checkpoint="hypercare", gates=tuple(GATES)),
    )
    assert StopGateChecks(checkpoint=None) not in transition.effects
    assert room.ledger_kinds(transition)[-2:] == [
        LedgerKind.CHECKPOINT_COMPLETED,
        LedgerKind.HYPERCARE_STARTED,
    ]
    (started,) = [e for e in transition.of(Ledger) if e.kind == LedgerKind.HYPERCARE_STARTED]
    assert started.payload["until"] == HC_END.isoformat()
    assert started.payload["cadence"] == [{"every": "5m", "until": "1h"}, {"every": "15m", "until": "2h"}]
    (told,) = [
        n
        for n in transition.of(Notify)
        if isinstance(n.message, RunStateLine) and n.message.state == "hypercare"
    ]
    assert told.users == ("U0ENG1", "U0RISK1", "U0REL1")


def test_hyper_care_checks_only_the_gates_it_names() -> None:
    room = hypercare_room({**HYPERCARE, "gates": ["latency"]}).in_hypercare()
    (scheduled,) = [
        e for e in room.effects if isinstance(e, ScheduleGateChecks) and e.checkpoint == "hypercare"
    ]
    assert scheduled.gates == ("latency",)
    transition = room.results("hypercare", minutes(30), latency="pass", doom="fail")
    assert set(room.progress.hypercare_evidence) == {"latency"}
    assert room.state() is RunState.HYPERCARE and transition.of(ShiftTraffic) == ()


@pytest.mark.parametrize(
    ("gate", "after"),
    [
        ("parity", RunState.PAUSED),
        ("latency", RunState.HELD),
        ("auth_success", RunState.HELD),
        ("fallback", RunState.FROZEN),
        ("doom", RunState.ROLLING_BACK),
    ],
)
def test_a_failing_hyper_care_gate_takes_the_action_the_plan_gives_it(gate: str, after: RunState) -> None:
    room = reach(RunState.HYPERCARE)
    transition = room.results("hypercare", minutes(30), **{gate: "fail"})
    assert room.state() is after
    (failed,) = [e for e in transition.of(Ledger) if e.kind == LedgerKind.GATE_FAILED]
    assert failed.payload["checkpoint"] == "hypercare" and failed.payload["taken"] is True
    shifts = [(s.cohort, s.percent, s.cause) for s in transition.of(ShiftTraffic)]
    if gate == "auth_success":  # rollback_cohort: the last traffic checkpoint's cohort, 100 -> 25
        assert shifts == [("merchant-a", 25, "rollback_cohort")]
        assert [h.checkpoint for h in room.progress.open_holds()] == ["hypercare"]
    elif gate == "doom":  # global_rollback: every cohort to 0, and the run ends once confirmed
        assert shifts == [("merchant-a", 0, "global_rollback")]
        assert transition.of(ShiftTraffic)[0].checkpoint == "hypercare"
        room.confirm_shifts(minutes(31))
        assert room.state() is RunState.ROLLED_BACK and room.progress.traffic == {"merchant-a": 0}
    else:
        assert shifts == []
        assert room.progress.traffic == {"merchant-a": 100}


def test_the_most_severe_action_wins_in_hyper_care_too() -> None:
    room = reach(RunState.HYPERCARE)
    transition = room.results("hypercare", minutes(30), parity="fail", latency="fail", auth_success="fail")
    (failed,) = [e for e in transition.of(Ledger) if e.kind == LedgerKind.GATE_FAILED]
    assert (failed.actor, failed.payload["action"]) == ("gate:auth-success", "rollback_cohort")
    assert [s.percent for s in transition.of(ShiftTraffic)] == [25]
    assert room.state() is RunState.HELD


def test_released_resumed_or_unfrozen_the_run_returns_to_hyper_care_and_traffic_never_rises() -> None:
    room = reach(RunState.HYPERCARE)
    room.results("hypercare", minutes(30), auth_success="fail")
    room.confirm_shifts(minutes(30))
    room.do(Pause(at=minutes(31), user="U0REL1", reason="look first"))
    (hold,) = room.open_hold_ids()
    released = room.do(HoldReleased(at=minutes(32), hold_id=hold, user="U0ENG1"))
    assert room.state() is RunState.PAUSED  # a pause still stops it
    room.do(Freeze(at=minutes(33), user="U0REL1", reason="and freeze"))
    room.do(Resume(at=minutes(34), user="U0REL1"))
    assert room.state() is RunState.FROZEN
    unfrozen = room.do(Unfreeze(at=minutes(35), user="U0REL1"))
    assert room.state() is RunState.HYPERCARE
    passing = room.results("hypercare", minutes(40), **dict.fromkeys(["auth_success", "latency"], "pass"))
    room.results("hypercare", minutes(45), **dict.fromkeys(["auth_success", "latency"], "pass"))
    for transition in (released, unfrozen, passing, room.do(Tick(at=minutes(50)))):
        assert transition.of(ShiftTraffic) == ()
    assert room.progress.traffic == {"merchant-a": 25}


def test_results_for_a_checkpoint_during_hyper_care_and_for_hyper_care_during_the_stages_are_ignored() -> (
    None
):
    stages = hypercare_room()
    stages.sign_off().start()
    early = stages.results("hypercare", minutes(1), latency="fail")
    assert stages.ledger_kinds(early) == [LedgerKind.GATE_RESULTS_IGNORED]
    room = reach(RunState.HYPERCARE)
    before = room.progress
    late = room.results("full", minutes(30), latency="fail")
    assert late.progress == before
    assert room.ledger_kinds(late) == [LedgerKind.GATE_RESULTS_IGNORED]


def test_a_run_stopped_when_hyper_care_runs_out_completes_at_the_first_tick_after_its_release() -> None:
    room = reach(RunState.HYPERCARE)
    room.do(HoldOpened(at=minutes(140), user="U0SEC1", reason="looking"))
    room.do(Tick(at=HC_END + timedelta(minutes=5)))
    assert room.state() is RunState.HELD
    (hold,) = room.open_hold_ids()
    room.do(HoldReleased(at=HC_END + timedelta(minutes=10), hold_id=hold, user="U0REL1"))
    assert room.state() is RunState.HYPERCARE
    room.do(Tick(at=HC_END + timedelta(minutes=11)))
    assert room.state() is RunState.COMPLETED


def test_a_checkpoint_done_or_an_abort_in_hyper_care_is_illegal_and_says_why() -> None:
    room = reach(RunState.HYPERCARE)
    with pytest.raises(IllegalTransition, match="in hyper-care; roll back"):
        room.do(Abort(at=minutes(30), user="U0REL1", reason="done"))
    with pytest.raises(IllegalTransition, match="in hyper-care"):
        room.do(CheckpointDone(at=minutes(30), checkpoint="full", user="U0RISK1"))
    # Paused, it is still a run whose stages are over.
    room.do(Pause(at=minutes(32), user="U0REL1", reason="think"))
    with pytest.raises(IllegalTransition, match="in hyper-care; roll back instead"):
        room.do(Abort(at=minutes(33), user="U0REL1", reason="done"))


def test_a_global_rollback_request_in_hyper_care_ends_the_run_rolled_back() -> None:
    room = reach(RunState.HYPERCARE)
    transition = room.do(RollbackRequested(at=minutes(30), user="U0REL1", scope="all", reason="abandon"))
    assert [(s.percent, s.checkpoint) for s in transition.of(ShiftTraffic)] == [(0, "hypercare")]
    assert StopGateChecks(checkpoint=None) in transition.effects
    room.confirm_shifts(minutes(31))
    assert room.state() is RunState.ROLLED_BACK


def test_the_hyper_care_cadence_gives_every_interval_its_own_slot() -> None:
    plan = make_plan(HYPERCARE_CUTOVER, hypercare=HYPERCARE)
    assert plan.hypercare is not None
    care = plan.hypercare
    assert care.length == timedelta(hours=2)
    assert care.step_at(timedelta(minutes=59)) == (0, care.cadence[0])
    assert care.step_at(timedelta(minutes=60)) == (1, care.cadence[1])
    assert care.step_at(timedelta(hours=2)) is None
    slots = [care.slot_at(timedelta(minutes=m)) for m in range(0, 120)]
    assert slots[0] == 0 and slots[59] == 11 and slots[60] == 12 and slots[119] == 15
    assert slots == sorted(slots)
    assert len(set(slots)) == 12 + 4


def test_hyper_care_ending_with_traffic_short_of_the_plan_holds_the_run_for_the_start_roles() -> None:
    room = reach(RunState.HYPERCARE)
    room.do(RollbackRequested(at=minutes(30), user="U0ENG1", scope="cohort", reason="errors creeping"))
    room.confirm_shifts(minutes(30))
    (cohort_hold,) = room.open_hold_ids()
    room.do(HoldReleased(at=minutes(31), hold_id=cohort_hold, user="U0REL1"))
    assert room.state() is RunState.HYPERCARE and room.progress.traffic["merchant-a"] == 25
    ended = room.do(Tick(at=HC_END))
    assert room.state() is RunState.HELD, "not completed at 25 % of a plan that ends at 100 %"
    (hold,) = room.progress.open_holds()
    assert hold.checkpoint == "hypercare" and set(hold.release_by) == {"release-authority", "release-eng"}
    assert "merchant-a" in hold.reason and "25%" in hold.reason and "100%" in hold.reason
    assert LedgerKind.RUN_COMPLETED not in room.ledger_kinds(ended)
    room.do(RollbackRequested(at=HC_END + timedelta(minutes=1), user="U0REL1", scope="all", reason="decided"))
    room.confirm_shifts(HC_END + timedelta(minutes=1))
    assert room.state() is RunState.ROLLED_BACK
