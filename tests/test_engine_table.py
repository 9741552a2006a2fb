"""The transition table (packets/engine/table.py), one test per row; then the events no row takes,
and what `step` does to every event on the way in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from packets.authority import Refused
from packets.engine.effects import (
    CloseHold,
    Ledger,
    LedgerKind,
    Notify,
    OpenHold,
    ScheduleGateChecks,
    ShiftTraffic,
    StopGateChecks,
)
from packets.engine.errors import IllegalTransition
from packets.engine.events import (
    EVENT_TYPES,
    Abort,
    ActuationFailed,
    ActuationSucceeded,
    CheckpointDone,
    Event,
    Freeze,
    GateResults,
    HoldOpened,
    HoldReleased,
    PacketAdopted,
    Pause,
    ReleaseWithdrawn,
    Restore,
    Resume,
    RollbackRequested,
    SignoffGiven,
    Start,
    Tick,
    Unfreeze,
)
from packets.engine.progress import CheckpointState, HoldState, RunState
from packets.engine.table import TABLE, row_for, step
from packets.gates import GateResult, Outcome
from packets.messages import MessageKind, RunStateLine
from packets.packet import HoldSource, PacketState
from tests.engine_fixtures import (
    HC_END,
    T0,
    WarRoom,
    allowed,
    make_packet,
    minutes,
    reach,
    row,
)

# == the transition table, one test per row ====================================================


def test_a_signoff_of_the_run_revision_is_recorded_and_the_last_one_makes_the_run_ready() -> None:
    room = WarRoom.open()
    first = room.do(SignoffGiven(at=T0, user="U0REL1", role="release-authority", revision=room.plan.revision))
    assert room.progress.state is RunState.AWAITING_SIGNOFF
    assert [(e.kind, e.actor) for e in first.of(Ledger)] == [("signoff", "U0REL1")]
    last = room.do(SignoffGiven(at=T0, user="U0RISK1", role="payments-risk", revision=room.plan.revision))
    assert room.state() is RunState.READY
    assert LedgerKind.RUN_READY in room.ledger_kinds(last)
    assert set(room.progress.signoffs) == {"release-authority", "payments-risk"}


def test_start_by_a_start_role_begins_the_first_checkpoint() -> None:
    room = WarRoom.open().sign_off()
    transition = room.do(Start(at=T0, user="U0ENG1"))
    assert room.progress.state is RunState.RUNNING
    assert room.progress.started_by == "U0ENG1"
    assert room.cp("prep") is CheckpointState.ACTIVE
    assert transition.of(Notify)[-1].users == ("U0ENG1", "U0SEC1")  # owner and observer


def test_a_tick_completes_a_soaked_checkpoint_whose_gates_passed_and_starts_the_next() -> None:
    room = WarRoom.open().canary_running()
    room.results("canary", minutes(10), auth_success="pass", latency="pass")
    room.results("canary", minutes(11), auth_success="pass", latency="pass")
    assert room.cp("canary") is CheckpointState.SOAKING  # soak runs to minute 25
    transition = room.do(Tick(at=minutes(25)))
    assert room.cp("canary") is CheckpointState.DONE
    assert transition.of(StopGateChecks) == (StopGateChecks(checkpoint="canary"),)
    assert room.cp("widen") is CheckpointState.HELD
    assert room.progress.state is RunState.HELD


@pytest.mark.parametrize("state", sorted(row(RunState.HELD, Tick).states))
def test_a_tick_changes_nothing_in_a_run_that_is_not_running(state: RunState) -> None:
    room = reach(state)
    before = room.progress
    transition = room.do(Tick(at=minutes(300)))
    assert transition.progress == before
    assert transition.effects == ()


def test_gate_results_while_running_record_evidence_and_a_failure_takes_its_action() -> None:
    room = WarRoom.open().canary_running()
    room.results("canary", minutes(8), auth_success="pass", latency="pass")
    assert [r.outcome for r in room.progress.checkpoints["canary"].evidence["latency"]] == [Outcome.PASS]
    transition = room.results("canary", minutes(9), auth_success="pass", latency="fail")
    assert room.progress.state is RunState.HELD
    (opened,) = transition.of(OpenHold)
    assert opened.hold.source is HoldSource.GATE and opened.hold.opened_by == "gate:latency"
    assert allowed(RunState.RUNNING, GateResults, room.progress.state)


@pytest.mark.parametrize("state", [RunState.PAUSED, RunState.HELD])
def test_gate_results_while_paused_or_held_take_the_action_but_nothing_advances(state: RunState) -> None:
    room = reach(state)
    room.results("canary", minutes(10), auth_success="pass", latency="pass")
    room.results("canary", minutes(11), auth_success="pass", latency="pass")
    room.do(Tick(at=minutes(30)))
    assert room.cp("canary") is CheckpointState.SOAKING  # passed and soaked, but not running
    transition = room.results("canary", minutes(31), auth_success="fail", latency="pass")
    assert [s.percent for s in transition.of(ShiftTraffic)] == [0.0]  # rollback_cohort still acts
    assert room.progress.state is RunState.HELD
    assert allowed(state, GateResults, room.progress.state)


def test_gate_results_while_frozen_are_recorded_but_move_no_traffic() -> None:
    room = reach(RunState.FROZEN)
    transition = room.results("canary", minutes(10), auth_success="fail", latency="pass")
    assert transition.of(ShiftTraffic) == ()
    (failed,) = transition.of(Ledger)
    assert failed.kind == LedgerKind.GATE_FAILED and failed.payload["taken"] is False
    assert room.progress.state is RunState.FROZEN
    assert room.progress.traffic["merchant-a"] == 1.0


def test_the_owner_marking_a_plain_checkpoint_done_advances_the_run() -> None:
    room = WarRoom.open().sign_off().start()
    done = room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    assert room.cp("prep") is CheckpointState.DONE
    assert room.progress.checkpoints["prep"].done_by == ("U0ENG1",)
    assert done.of(ShiftTraffic) == () and room.cp("canary") is CheckpointState.READY
    transition = room.results("canary", minutes(5), auth_success="pass", latency="pass")
    (shift,) = transition.of(ShiftTraffic)
    assert (shift.cohort, shift.percent, shift.previous_percent, shift.packet_version) == (
        "merchant-a",
        1,
        0,
        1,
    )
    assert transition.of(ScheduleGateChecks) == (
        ScheduleGateChecks(checkpoint="canary", gates=("auth-success", "latency")),
    )


@pytest.mark.parametrize("state", [RunState.PAUSED, RunState.HELD, RunState.FROZEN])
def test_a_checkpoint_done_while_the_run_is_stopped_is_recorded_without_advancing(state: RunState) -> None:
    room = WarRoom.open().sign_off().start()
    if state is RunState.PAUSED:
        room.do(Pause(at=minutes(1), user="U0REL1", reason="wait"))
    elif state is RunState.HELD:
        room.do(HoldOpened(at=minutes(1), user="U0SEC1", reason="wait"))
    else:
        room.do(Freeze(at=minutes(1), user="U0REL1", reason="wait"))
    transition = room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    assert room.cp("prep") is CheckpointState.DONE
    assert transition.of(ShiftTraffic) == ()
    assert room.progress.state is state


def test_anyone_acting_for_a_role_may_hold_the_running_run() -> None:
    room = WarRoom.open().canary_running()
    transition = room.do(HoldOpened(at=minutes(6), user="U0SEC1", reason="odd error rate"))
    (opened,) = transition.of(OpenHold)
    assert opened.hold.checkpoint == "canary"  # the checkpoint in flight
    assert opened.hold.release_by == ("release-authority", "release-eng")
    assert opened.hold.source is HoldSource.MANUAL
    assert room.progress.state is RunState.HELD


def test_a_hold_opened_under_a_freeze_keeps_the_run_frozen() -> None:
    room = reach(RunState.FROZEN)
    room.do(HoldOpened(at=minutes(8), user="U0SEC1", reason="and hold"))
    assert room.progress.state is RunState.FROZEN
    assert len(room.open_hold_ids()) == 1


def test_releasing_the_last_open_hold_lets_the_run_advance() -> None:
    room = WarRoom.open().canary_passed()
    assert room.open_hold_ids() == ["widen/plan/1"]
    transition = room.do(HoldReleased(at=minutes(30), hold_id="widen/plan/1", user="U0REL1"))
    assert transition.of(CloseHold) == (
        CloseHold(hold_id="widen/plan/1", by=("U0REL1",), roles=("release-authority",)),
    )
    assert room.cp("widen") is CheckpointState.DONE
    assert room.progress.checkpoints["widen"].done_by == ("U0REL1",)
    assert room.cp("retire") is CheckpointState.HELD  # the next hold opened at once
    assert room.progress.state is RunState.HELD


def test_a_release_under_a_freeze_is_recorded_and_the_run_stays_frozen() -> None:
    room = WarRoom.open().canary_passed()
    room.do(Freeze(at=minutes(27), user="U0REL1", reason="fallback"))
    room.do(HoldReleased(at=minutes(30), hold_id="widen/plan/1", user="U0REL1"))
    assert room.progress.state is RunState.FROZEN
    assert room.cp("widen") is CheckpointState.READY  # released; runs once unfrozen
    room.do(Unfreeze(at=minutes(31), user="U0REL1"))
    assert room.cp("widen") is CheckpointState.DONE


@pytest.mark.parametrize(
    "state", [RunState.AWAITING_SIGNOFF, RunState.READY, RunState.PAUSED, RunState.HELD, RunState.FROZEN]
)
def test_adopting_a_packet_before_the_run_or_while_it_is_stopped_only_changes_the_version(
    state: RunState,
) -> None:
    room = reach(state)
    v2 = make_packet(room.plan, version=2)
    transition = room.do(PacketAdopted(at=minutes(8), version=2, user="U0REL1"), packet=v2)
    assert room.progress.packet_version == 2
    assert room.progress.state is state
    assert [e.kind for e in transition.of(Ledger)] == [LedgerKind.PACKET_FOLLOWED]


def test_adopting_a_packet_while_soaking_keeps_the_evidence_gathered() -> None:
    room = WarRoom.open().canary_running()
    room.results("canary", minutes(10), auth_success="pass", latency="pass")
    before = room.progress.checkpoints["canary"]
    v2 = make_packet(room.plan, version=2)
    room.do(PacketAdopted(at=minutes(12), version=2, user="U0REL1"), packet=v2)
    room.packet = v2
    assert room.progress.checkpoints["canary"] == before
    room.results("canary", minutes(13), auth_success="pass", latency="pass")
    room.do(Tick(at=minutes(25)))
    assert room.cp("canary") is CheckpointState.DONE  # one pass before, one after the adoption


def test_a_pauser_pauses_the_run_and_nothing_advances() -> None:
    room = WarRoom.open().sign_off().start()
    room.do(Pause(at=minutes(1), user="U0REL1", reason="db failover drill"))
    assert room.progress.state is RunState.PAUSED
    assert room.progress.paused is not None and room.progress.paused.by == "U0REL1"
    room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    assert room.progress.traffic["merchant-a"] == 0


def test_resume_by_a_pauser_advances_a_paused_run() -> None:
    room = WarRoom.open().sign_off().start()
    room.do(Pause(at=minutes(1), user="U0REL1", reason="wait"))
    room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    transition = room.do(Resume(at=minutes(6), user="U0ENG1"))
    assert room.progress.state is RunState.RUNNING
    # Recovery is deliberate: the canary waits for its gates' passes gathered after the resume.
    assert transition.of(ShiftTraffic) == () and room.cp("canary") is CheckpointState.READY
    room.results("canary", minutes(7), auth_success="pass", latency="pass")
    moved = room.results("canary", minutes(8), auth_success="pass", latency="pass")
    assert [s.percent for s in moved.of(ShiftTraffic)] == [1.0]


@pytest.mark.parametrize("state", [RunState.HELD, RunState.FROZEN])
def test_resume_under_a_hold_or_freeze_lifts_the_pause_and_the_run_stays_stopped(state: RunState) -> None:
    room = reach(RunState.PAUSED)
    if state is RunState.HELD:
        room.do(HoldOpened(at=minutes(7), user="U0SEC1", reason="and hold"))
    else:
        room.do(Freeze(at=minutes(7), user="U0REL1", reason="and freeze"))
    room.do(Resume(at=minutes(8), user="U0REL1"))
    assert room.progress.paused is None
    assert room.progress.state is state


def test_a_freeze_stops_every_traffic_change_including_a_rollback() -> None:
    room = WarRoom.open().canary_running()
    room.do(Freeze(at=minutes(6), user="U0REL1", reason="fallback unhealthy"))
    assert room.progress.state is RunState.FROZEN
    with pytest.raises(IllegalTransition, match="frozen"):
        room.do(RollbackRequested(at=minutes(7), user="U0REL1", scope="all", reason="out"))


def test_unfreeze_returns_the_run_to_whatever_still_stops_it() -> None:
    room = reach(RunState.PAUSED)
    room.do(Freeze(at=minutes(7), user="U0REL1", reason="fallback"))
    room.do(Unfreeze(at=minutes(8), user="U0ENG1"))
    assert room.progress.state is RunState.PAUSED
    room.do(Resume(at=minutes(9), user="U0REL1"))
    assert room.state() is RunState.RUNNING


def test_a_cohort_rollback_request_shifts_the_cohort_back_and_holds() -> None:
    room = WarRoom.open().canary_running()
    transition = room.do(
        RollbackRequested(at=minutes(8), user="U0ENG1", scope="cohort", reason="latency creeping")
    )
    (shift,) = transition.of(ShiftTraffic)
    assert (shift.cohort, shift.percent, shift.previous_percent, shift.cause) == (
        "merchant-a",
        0,
        1,
        "rollback_cohort",
    )
    assert room.progress.state is RunState.HELD
    assert room.cp("canary") is CheckpointState.HELD
    (opened,) = transition.of(OpenHold)
    assert opened.hold.source is HoldSource.MANUAL and opened.hold.opened_by == "U0ENG1"


def test_a_global_rollback_request_takes_every_cohort_back_and_ends_the_run_once_confirmed() -> None:
    room = WarRoom.open().canary_running()
    room.do(HoldOpened(at=minutes(7), user="U0SEC1", reason="hold"))
    transition = room.do(RollbackRequested(at=minutes(8), user="U0REL1", scope="all", reason="abandon"))
    assert [(s.cohort, s.percent) for s in transition.of(ShiftTraffic)] == [("merchant-a", 0.0)]
    assert room.progress.state is RunState.ROLLING_BACK
    assert all(h.state is HoldState.WITHDRAWN for h in room.progress.holds.values())
    assert StopGateChecks(checkpoint=None) in transition.effects
    assert room.cp("canary") is CheckpointState.FAILED and room.cp("retire") is CheckpointState.SKIPPED
    room.confirm_shifts(minutes(9))
    assert room.state() is RunState.ROLLED_BACK


def test_a_rollback_retry_resends_unconfirmed_commands_under_the_same_key() -> None:
    room = reach(RunState.ROLLING_BACK)
    (sent,) = room.last.of(ShiftTraffic) if room.last else ()
    room.do(ActuationFailed(at=minutes(7), checkpoint="canary", cohort="merchant-a", percent=0, detail="503"))
    assert room.progress.state is RunState.ROLLING_BACK
    transition = room.do(RollbackRequested(at=minutes(8), user="U0ENG1", scope="all", reason="again"))
    (again,) = transition.of(ShiftTraffic)
    assert again == sent
    assert room.ledger_kinds(transition) == [LedgerKind.ROLLBACK_RETRIED]


def test_a_confirmed_shift_lets_a_soaked_checkpoint_complete() -> None:
    room = WarRoom.open().sign_off().start()
    room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    room.results("canary", minutes(5), auth_success="pass", latency="pass")
    room.results("canary", minutes(10), auth_success="pass", latency="pass")
    room.results("canary", minutes(11), auth_success="pass", latency="pass")
    room.do(Tick(at=minutes(26)))
    assert room.cp("canary") is CheckpointState.SOAKING  # passed and soaked, but not confirmed
    room.do(ActuationSucceeded(at=minutes(27), checkpoint="canary", cohort="merchant-a", percent=1))
    assert room.cp("canary") is CheckpointState.DONE


@pytest.mark.parametrize("state", [RunState.PAUSED, RunState.HELD, RunState.FROZEN])
def test_a_confirmation_while_the_run_is_stopped_is_recorded_without_advancing(state: RunState) -> None:
    room = WarRoom.open().sign_off().start()
    room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    room.results("canary", minutes(10), auth_success="pass", latency="pass")
    room.results("canary", minutes(11), auth_success="pass", latency="pass")
    stops: dict[RunState, Event] = {
        RunState.PAUSED: Pause(at=minutes(12), user="U0REL1", reason="x"),
        RunState.HELD: HoldOpened(at=minutes(12), user="U0REL1", reason="x"),
        RunState.FROZEN: Freeze(at=minutes(12), user="U0REL1", reason="x"),
    }
    room.do(stops[state])
    transition = room.do(
        ActuationSucceeded(at=minutes(30), checkpoint="canary", cohort="merchant-a", percent=1)
    )
    assert room.ledger_kinds(transition) == [LedgerKind.TRAFFIC_CONFIRMED]
    assert room.cp("canary") is CheckpointState.SOAKING
    assert room.progress.state is state


def test_a_refused_checkpoint_shift_puts_the_cohort_back_and_holds_the_checkpoint() -> None:
    room = WarRoom.open().sign_off().start()
    room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    room.results("canary", minutes(5), auth_success="pass", latency="pass")
    transition = room.do(
        ActuationFailed(
            at=minutes(5), checkpoint="canary", cohort="merchant-a", percent=1, detail="409 conflict"
        )
    )
    assert room.progress.traffic["merchant-a"] == 0
    assert room.cp("canary") is CheckpointState.HELD
    (opened,) = transition.of(OpenHold)
    assert opened.hold.source is HoldSource.ACTUATION
    assert room.progress.state is RunState.HELD
    # Released, it tries again under a new key.
    released = room.do(HoldReleased(at=minutes(9), hold_id=opened.hold.id, user="U0ENG1"))
    assert released.of(ShiftTraffic) == ()  # checked again before moving
    retried = room.results("canary", minutes(9), auth_success="pass", latency="pass")
    (shift,) = retried.of(ShiftTraffic)
    assert shift.percent == 1 and shift.key == "run-1/merchant-a/2"


def test_a_refused_rollback_shift_is_told_and_the_run_keeps_rolling_back() -> None:
    room = reach(RunState.ROLLING_BACK)
    transition = room.do(
        ActuationFailed(at=minutes(7), checkpoint="canary", cohort="merchant-a", percent=0, detail="timeout")
    )
    assert room.progress.state is RunState.ROLLING_BACK
    assert room.progress.traffic["merchant-a"] == 0
    (told,) = transition.of(Notify)
    assert told.kind == MessageKind.RUN_STATE and set(told.users) == {"U0REL1", "U0ENG1"}
    assert isinstance(told.message, RunStateLine)
    assert told.message.state == "traffic shift refused by the control plane"


@pytest.mark.parametrize(
    "state",
    [
        RunState.AWAITING_SIGNOFF,
        RunState.READY,
        RunState.RUNNING,
        RunState.PAUSED,
        RunState.HELD,
        RunState.FROZEN,
    ],
)
def test_a_run_without_traffic_on_the_new_path_can_be_aborted(state: RunState) -> None:
    room = WarRoom.open()
    if state is not RunState.AWAITING_SIGNOFF:
        room.sign_off()
    if state not in (RunState.AWAITING_SIGNOFF, RunState.READY):
        room.start()
        stops: dict[RunState, Event] = {
            RunState.PAUSED: Pause(at=minutes(1), user="U0REL1", reason="x"),
            RunState.HELD: HoldOpened(at=minutes(1), user="U0REL1", reason="x"),
            RunState.FROZEN: Freeze(at=minutes(1), user="U0REL1", reason="x"),
        }
        if state in stops:
            room.do(stops[state])
    assert room.progress.state is state
    transition = room.do(Abort(at=minutes(2), user="U0ENG1", reason="vendor outage"))
    assert room.progress.state is RunState.ABORTED
    assert room.ledger_kinds(transition)[-1] == LedgerKind.RUN_ABORTED
    assert all(not h.is_open for h in room.progress.holds.values())


def test_a_tick_in_hyper_care_changes_nothing_until_its_last_cadence_step_ran_out() -> None:
    room = reach(RunState.HYPERCARE)
    before = room.progress
    quiet = room.do(Tick(at=HC_END - timedelta(seconds=1)))
    assert quiet.progress == before and quiet.effects == ()
    transition = room.do(Tick(at=HC_END))
    assert room.state() is RunState.COMPLETED
    assert room.progress.ended_at == HC_END
    assert StopGateChecks(checkpoint=None) in transition.effects
    assert room.ledger_kinds(transition) == [LedgerKind.HYPERCARE_ENDED, LedgerKind.RUN_COMPLETED]
    assert "hyper-care ran its course (2h)" in room.progress.end_reason


def test_gate_results_in_hyper_care_record_evidence_and_a_failure_takes_its_action() -> None:
    room = reach(RunState.HYPERCARE)
    room.results("hypercare", minutes(30), latency="pass", parity="pass")
    assert [r.outcome for r in room.progress.hypercare_evidence["latency"]] == [Outcome.PASS]
    assert room.cp("full") is CheckpointState.DONE and room.progress.checkpoints["full"].evidence
    transition = room.results("hypercare", minutes(35), latency="fail", parity="pass")
    assert room.state() is RunState.HELD
    (opened,) = transition.of(OpenHold)
    assert (opened.hold.checkpoint, opened.hold.source, opened.hold.opened_by) == (
        "hypercare",
        HoldSource.GATE,
        "gate:latency",
    )
    assert opened.hold.release_by == ("release-authority", "release-eng")
    assert "during hyper-care" in opened.hold.reason
    (told,) = [n for n in transition.of(Notify) if n.kind == MessageKind.GATE_ALERT]
    # The owners of the traffic checkpoints and the start_and_rollback roles, as during the stages.
    assert told.roles == ("release-eng", "payments-risk", "release-authority")
    assert told.users == ("U0ENG1", "U0RISK1", "U0REL1")
    assert transition.of(ShiftTraffic) == ()
    assert allowed(RunState.HYPERCARE, GateResults, room.state())


def test_anyone_acting_for_a_role_may_hold_the_run_in_hyper_care() -> None:
    room = reach(RunState.HYPERCARE)
    transition = room.do(HoldOpened(at=minutes(30), user="U0SEC1", reason="odd error rate"))
    (opened,) = transition.of(OpenHold)
    assert (opened.hold.checkpoint, opened.hold.source) == ("hypercare", HoldSource.MANUAL)
    assert room.state() is RunState.HELD
    room.do(HoldReleased(at=minutes(31), hold_id=opened.hold.id, user="U0ENG1"))
    assert room.state() is RunState.HYPERCARE


def test_adopting_a_packet_in_hyper_care_only_changes_the_version() -> None:
    room = reach(RunState.HYPERCARE)
    v2 = make_packet(room.plan, version=2)
    transition = room.do(PacketAdopted(at=minutes(30), version=2, user="U0REL1"), packet=v2)
    assert room.progress.packet_version == 2
    assert room.state() is RunState.HYPERCARE
    assert [e.kind for e in transition.of(Ledger)] == [LedgerKind.PACKET_FOLLOWED]
    assert transition.of(ShiftTraffic) == ()


def test_a_pauser_pauses_hyper_care_and_resuming_returns_to_it() -> None:
    room = reach(RunState.HYPERCARE)
    with pytest.raises(Refused):
        room.do(Pause(at=minutes(30), user="U0SEC1", reason="dashboards"))
    room.do(Pause(at=minutes(30), user="U0REL1", reason="dashboards"))
    assert room.state() is RunState.PAUSED
    transition = room.do(Resume(at=minutes(31), user="U0ENG1"))
    assert room.state() is RunState.HYPERCARE
    assert transition.of(ShiftTraffic) == ()
    assert allowed(RunState.PAUSED, Resume, room.state())


def test_a_freeze_in_hyper_care_holds_every_traffic_change_until_an_unfreeze_returns_to_hyper_care() -> None:
    room = reach(RunState.HYPERCARE)
    room.do(Freeze(at=minutes(30), user="U0REL1", reason="fallback unhealthy"))
    assert room.state() is RunState.FROZEN
    quiet = room.results("hypercare", minutes(35), auth_success="fail", doom="fail")
    assert quiet.of(ShiftTraffic) == () and room.state() is RunState.FROZEN
    with pytest.raises(IllegalTransition, match="frozen"):
        room.do(RollbackRequested(at=minutes(36), user="U0REL1", scope="all", reason="out"))
    room.do(Unfreeze(at=minutes(37), user="U0REL1"))
    assert room.state() is RunState.HYPERCARE
    assert allowed(RunState.FROZEN, Unfreeze, room.state())


def test_a_cohort_rollback_in_hyper_care_takes_the_last_traffic_cohort_back_and_holds() -> None:
    room = reach(RunState.HYPERCARE)
    transition = room.do(
        RollbackRequested(at=minutes(30), user="U0ENG1", scope="cohort", reason="errors creeping")
    )
    (shift,) = transition.of(ShiftTraffic)
    assert (shift.checkpoint, shift.cohort, shift.percent, shift.previous_percent, shift.cause) == (
        "full",
        "merchant-a",
        25,
        100,
        "rollback_cohort",
    )
    assert room.cp("full") is CheckpointState.DONE  # nothing runs again
    (opened,) = transition.of(OpenHold)
    assert (opened.hold.checkpoint, opened.hold.source) == ("hypercare", HoldSource.MANUAL)
    assert room.state() is RunState.HELD
    room.confirm_shifts(minutes(31))
    room.do(HoldReleased(at=minutes(32), hold_id=opened.hold.id, user="U0REL1"))
    assert room.state() is RunState.HYPERCARE and room.progress.traffic == {"merchant-a": 25}
    with pytest.raises(IllegalTransition, match="already at its percent before full"):
        room.do(RollbackRequested(at=minutes(33), user="U0ENG1", scope="cohort", reason="again"))


def _readings(at_minute: int, **failing: str) -> tuple[GateResult, ...]:
    gates = ("auth-success", "latency", "parity", "fallback", "doom")
    return tuple(
        GateResult(gate=g, outcome=Outcome.FAIL, value=0.0, reason="bad", at=minutes(at_minute))
        if g in failing
        else GateResult(gate=g, outcome=Outcome.PASS, value=1.0, reason="ok", at=minutes(at_minute))
        for g in gates
    )


def test_a_cohort_rolled_back_in_hyper_care_is_restored_on_fresh_passing_readings() -> None:
    room = reach(RunState.HYPERCARE)
    room.do(RollbackRequested(at=minutes(30), user="U0ENG1", scope="cohort", reason="errors creeping"))
    room.confirm_shifts(minutes(31))
    assert room.state() is RunState.HELD and room.progress.traffic == {"merchant-a": 25}
    with pytest.raises(Refused):
        room.do(Restore(at=minutes(40), user="U0RISK1", cohort="merchant-a", readings=_readings(40)))
    with pytest.raises(IllegalTransition, match="no traffic checkpoint of the plan moves merchant-b"):
        room.do(Restore(at=minutes(40), user="U0ENG1", cohort="merchant-b", readings=_readings(40)))

    withheld = room.do(
        Restore(at=minutes(40), user="U0ENG1", cohort="merchant-a", readings=_readings(40, latency="fail"))
    )
    assert not [s for s in withheld.of(ShiftTraffic) if s.cause == "restore"]
    assert "restore_withheld" in room.ledger_kinds(withheld) and "gate_failed" in room.ledger_kinds(withheld)
    assert room.progress.traffic == {"merchant-a": 25}

    transition = room.do(Restore(at=minutes(45), user="U0ENG1", cohort="merchant-a", readings=_readings(45)))

    (shift,) = transition.of(ShiftTraffic)
    assert (shift.checkpoint, shift.cohort, shift.percent, shift.previous_percent, shift.cause) == (
        "full",
        "merchant-a",
        100,
        25,
        "restore",
    )
    assert room.open_hold_ids() == []
    assert room.state() is RunState.HYPERCARE and room.progress.hypercare_since == minutes(45)
    kinds = room.ledger_kinds(transition)
    assert "traffic_restored" in kinds and "hypercare_started" in kinds and "hold_withdrawn" in kinds
    with pytest.raises(IllegalTransition, match="already at the plan's 100%"):
        room.do(Restore(at=minutes(46), user="U0ENG1", cohort="merchant-a", readings=_readings(46)))


def test_a_restore_is_refused_during_the_stages_and_under_a_freeze() -> None:
    held = reach(RunState.HELD)
    with pytest.raises(IllegalTransition, match="only during hyper-care"):
        held.do(Restore(at=minutes(7), user="U0ENG1", cohort="merchant-a", readings=()))
    frozen = reach(RunState.HYPERCARE)
    frozen.do(RollbackRequested(at=minutes(30), user="U0ENG1", scope="cohort", reason="errors"))
    frozen.do(Freeze(at=minutes(31), user="U0REL1", reason="vendor incident"))
    with pytest.raises(IllegalTransition):
        frozen.do(Restore(at=minutes(32), user="U0ENG1", cohort="merchant-a", readings=_readings(32)))


def _hypercare_rollback_refused() -> WarRoom:
    """In hyper-care again after a cohort rollback the control plane refused (still outstanding)."""
    room = reach(RunState.HYPERCARE)
    room.do(RollbackRequested(at=minutes(30), user="U0ENG1", scope="cohort", reason="errors"))
    room.do(ActuationFailed(at=minutes(30), checkpoint="full", cohort="merchant-a", percent=25, detail="503"))
    for hold in room.open_hold_ids():
        room.do(HoldReleased(at=minutes(31), hold_id=hold, user="U0REL1"))
    assert room.state() is RunState.HYPERCARE and "merchant-a" in room.progress.outstanding()
    return room


def test_a_rollback_confirmed_in_hyper_care_is_recorded_and_the_run_stays_in_hyper_care() -> None:
    room = _hypercare_rollback_refused()
    transition = room.do(
        ActuationSucceeded(at=minutes(32), checkpoint="full", cohort="merchant-a", percent=25)
    )
    assert room.ledger_kinds(transition) == [LedgerKind.TRAFFIC_CONFIRMED]
    assert room.state() is RunState.HYPERCARE and not room.progress.outstanding()


def test_a_rollback_refused_in_hyper_care_is_told_and_holds_the_run() -> None:
    room = _hypercare_rollback_refused()
    transition = room.do(
        ActuationFailed(at=minutes(32), checkpoint="full", cohort="merchant-a", percent=25, detail="503")
    )
    (opened,) = transition.of(OpenHold)
    assert opened.hold.source is HoldSource.ACTUATION
    assert room.state() is RunState.HELD
    assert room.progress.traffic == {"merchant-a": 25}  # still wanted there: a person retries


R = RunState


def test_taking_back_a_release_of_a_two_person_hold_keeps_the_run_held() -> None:
    room = WarRoom.open().canary_passed()
    room.do(HoldReleased(at=minutes(30), hold_id="widen/plan/1", user="U0REL1"))
    (retire,) = room.open_hold_ids()
    room.do(HoldReleased(at=minutes(31), hold_id=retire, user="U0RISK1"))
    room.do(ReleaseWithdrawn(at=minutes(32), hold_id=retire, user="U0RISK1"))
    assert room.state() is RunState.HELD and room.progress.holds[retire].releases == ()


ROW_TESTS: list[tuple[RunState, type[Any], Callable[..., None]]] = [
    (
        R.AWAITING_SIGNOFF,
        SignoffGiven,
        test_a_signoff_of_the_run_revision_is_recorded_and_the_last_one_makes_the_run_ready,
    ),
    (R.READY, Start, test_start_by_a_start_role_begins_the_first_checkpoint),
    (R.RUNNING, Tick, test_a_tick_completes_a_soaked_checkpoint_whose_gates_passed_and_starts_the_next),
    (R.HELD, Tick, test_a_tick_changes_nothing_in_a_run_that_is_not_running),
    (R.RUNNING, GateResults, test_gate_results_while_running_record_evidence_and_a_failure_takes_its_action),
    (R.PAUSED, GateResults, test_gate_results_while_paused_or_held_take_the_action_but_nothing_advances),
    (R.FROZEN, GateResults, test_gate_results_while_frozen_are_recorded_but_move_no_traffic),
    (R.RUNNING, CheckpointDone, test_the_owner_marking_a_plain_checkpoint_done_advances_the_run),
    (R.PAUSED, CheckpointDone, test_a_checkpoint_done_while_the_run_is_stopped_is_recorded_without_advancing),
    (R.RUNNING, HoldOpened, test_anyone_acting_for_a_role_may_hold_the_running_run),
    (R.FROZEN, HoldOpened, test_a_hold_opened_under_a_freeze_keeps_the_run_frozen),
    (R.HELD, HoldReleased, test_releasing_the_last_open_hold_lets_the_run_advance),
    (R.FROZEN, HoldReleased, test_a_release_under_a_freeze_is_recorded_and_the_run_stays_frozen),
    (R.HELD, ReleaseWithdrawn, test_taking_back_a_release_of_a_two_person_hold_keeps_the_run_held),
    (
        R.READY,
        PacketAdopted,
        test_adopting_a_packet_before_the_run_or_while_it_is_stopped_only_changes_the_version,
    ),
    (R.RUNNING, PacketAdopted, test_adopting_a_packet_while_soaking_keeps_the_evidence_gathered),
    (R.RUNNING, Pause, test_a_pauser_pauses_the_run_and_nothing_advances),
    (R.PAUSED, Resume, test_resume_by_a_pauser_advances_a_paused_run),
    (R.HELD, Resume, test_resume_under_a_hold_or_freeze_lifts_the_pause_and_the_run_stays_stopped),
    (R.RUNNING, Freeze, test_a_freeze_stops_every_traffic_change_including_a_rollback),
    (R.FROZEN, Unfreeze, test_unfreeze_returns_the_run_to_whatever_still_stops_it),
    (R.RUNNING, RollbackRequested, test_a_cohort_rollback_request_shifts_the_cohort_back_and_holds),
    (
        R.ROLLING_BACK,
        RollbackRequested,
        test_a_rollback_retry_resends_unconfirmed_commands_under_the_same_key,
    ),
    (R.RUNNING, ActuationSucceeded, test_a_confirmed_shift_lets_a_soaked_checkpoint_complete),
    (
        R.PAUSED,
        ActuationSucceeded,
        test_a_confirmation_while_the_run_is_stopped_is_recorded_without_advancing,
    ),
    (
        R.RUNNING,
        ActuationFailed,
        test_a_refused_checkpoint_shift_puts_the_cohort_back_and_holds_the_checkpoint,
    ),
    (
        R.ROLLING_BACK,
        ActuationSucceeded,
        test_a_global_rollback_request_takes_every_cohort_back_and_ends_the_run_once_confirmed,
    ),
    (R.ROLLING_BACK, ActuationFailed, test_a_refused_rollback_shift_is_told_and_the_run_keeps_rolling_back),
    (R.READY, Abort, test_a_run_without_traffic_on_the_new_path_can_be_aborted),
    (R.HYPERCARE, Tick, test_a_tick_in_hyper_care_changes_nothing_until_its_last_cadence_step_ran_out),
    (
        R.HYPERCARE,
        GateResults,
        test_gate_results_in_hyper_care_record_evidence_and_a_failure_takes_its_action,
    ),
    (R.HYPERCARE, HoldOpened, test_anyone_acting_for_a_role_may_hold_the_run_in_hyper_care),
    (R.HYPERCARE, PacketAdopted, test_adopting_a_packet_in_hyper_care_only_changes_the_version),
    (R.HYPERCARE, Pause, test_a_pauser_pauses_hyper_care_and_resuming_returns_to_it),
    (
        R.HYPERCARE,
        Freeze,
        test_a_freeze_in_hyper_care_holds_every_traffic_change_until_an_unfreeze_returns_to_hyper_care,
    ),
    (
        R.HYPERCARE,
        RollbackRequested,
        test_a_cohort_rollback_in_hyper_care_takes_the_last_traffic_cohort_back_and_holds,
    ),
    (
        R.HYPERCARE,
        ActuationSucceeded,
        test_a_rollback_confirmed_in_hyper_care_is_recorded_and_the_run_stays_in_hyper_care,
    ),
    (R.HYPERCARE, ActuationFailed, test_a_rollback_refused_in_hyper_care_is_told_and_holds_the_run),
    (
        R.HELD,
        Restore,
        test_a_cohort_rolled_back_in_hyper_care_is_restored_on_fresh_passing_readings,
    ),
]


def test_every_row_of_the_transition_table_has_a_test_of_its_own() -> None:
    assert {row(state, event) for state, event, _ in ROW_TESTS} == set(TABLE)
    assert len({test for _, _, test in ROW_TESTS}) == len(TABLE)


def test_a_proposed_packet_changes_nothing_until_it_is_adopted() -> None:
    room = WarRoom.open().canary_running()
    v2 = make_packet(room.plan, version=2, state=PacketState.PROPOSED)
    with pytest.raises(Refused, match="follows packet v1"):
        room.do(Tick(at=minutes(30)), packet=v2)
    with pytest.raises(Refused, match="adopt"):
        room.do(PacketAdopted(at=minutes(30), version=2, user="U0ENG1"), packet=v2)
    room.do(PacketAdopted(at=minutes(30), version=2, user="U0REL1"), packet=v2)
    assert room.progress.packet_version == 2
    with pytest.raises(Refused, match="follows packet v2"):
        room.do(Tick(at=minutes(31)))


def test_illegal_events_raise_one_typed_error_carrying_the_event_and_the_state() -> None:
    room = WarRoom.open()
    event = Resume(at=T0, user="U0REL1")
    with pytest.raises(IllegalTransition) as caught:
        room.do(event)
    assert caught.value.event is event
    assert caught.value.state is RunState.AWAITING_SIGNOFF


def _sample(kind: type[Any]) -> Event:
    samples: dict[type[Any], Event] = {
        SignoffGiven: SignoffGiven(at=T0, user="U0REL1", role="release-authority", revision="x"),
        Start: Start(at=T0, user="U0REL1"),
        Tick: Tick(at=T0),
        GateResults: GateResults(at=T0, checkpoint="canary", results=()),
        CheckpointDone: CheckpointDone(at=T0, checkpoint="prep", user="U0ENG1"),
        HoldOpened: HoldOpened(at=T0, user="U0REL1", reason="x"),
        HoldReleased: HoldReleased(at=T0, hold_id="h", user="U0REL1"),
        ReleaseWithdrawn: ReleaseWithdrawn(at=T0, hold_id="h", user="U0REL1"),
        PacketAdopted: PacketAdopted(at=T0, version=2, user="U0REL1"),
        Pause: Pause(at=T0, user="U0REL1", reason="x"),
        Resume: Resume(at=T0, user="U0REL1"),
        Freeze: Freeze(at=T0, user="U0REL1", reason="x"),
        Unfreeze: Unfreeze(at=T0, user="U0REL1"),
        RollbackRequested: RollbackRequested(at=T0, user="U0REL1", scope="all", reason="x"),
        Restore: Restore(at=T0, user="U0REL1", cohort="c"),
        ActuationSucceeded: ActuationSucceeded(at=T0, checkpoint=None, cohort="c", percent=0),
        ActuationFailed: ActuationFailed(at=T0, checkpoint=None, cohort="c", percent=0, detail="x"),
        Abort: Abort(at=T0, user="U0REL1", reason="x"),
    }
    return samples[kind]


@pytest.mark.parametrize("state", list(RunState))
def test_every_event_without_a_row_for_the_state_is_an_illegal_transition(state: RunState) -> None:
    room = WarRoom.open()
    progress = replace(room.progress, state=state)
    for kind in EVENT_TYPES:
        if row_for(state, kind) is not None:
            continue
        with pytest.raises(IllegalTransition) as caught:
            step(progress, _sample(kind), plan=room.plan, packet=room.packet, roster=room.roster)
        assert caught.value.state is state


def test_a_free_text_secret_never_reaches_state_or_effects() -> None:
    room = WarRoom.open().canary_running()
    transition = room.do(HoldOpened(at=minutes(7), user="U0SEC1", reason="token=hunter2 in the logs"))
    (opened,) = transition.of(OpenHold)
    assert "hunter2" not in opened.hold.reason
    assert "hunter2" not in json.dumps(room.progress.as_json())
