"""The stage engine, row by row of its transition table, then the rules of the issue one by one.

The plan here is the payments cutover in miniature: a plain preparation checkpoint, a gated
canary that shifts merchant-a to 1%, a hold to widen, and the protected legacy retirement that
needs two people. `WarRoom` steps the real engine with a real `authority.Roster` and records
every effect it is asked to carry out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from packets.authority import Roster
from packets.effects import (
    CloseHold,
    Effect,
    Ledger,
    LedgerKind,
    Notify,
    OpenHold,
    ScheduleGateChecks,
    ShiftTraffic,
    StopGateChecks,
)
from packets.events import (
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
    Resume,
    RollbackRequested,
    SignoffGiven,
    Start,
    Tick,
    Unfreeze,
)
from packets.gates import GateResult, Outcome
from packets.packet import HoldSource, Packet, PacketHold, PacketState, PlannedCheckpoint
from packets.plan import Plan
from packets.run_progress import CheckpointState, HoldState, RunProgress, RunState
from packets.stages import TABLE, IllegalTransition, Refusal, Row, Transition, new_run, row_for, step

T0 = datetime(2026, 11, 24, 21, 0, tzinfo=timezone(timedelta(hours=-5)))

ROLES: dict[str, Any] = {
    "release-authority": {"primary": "U0REL1", "delegates": ["U0REL2"]},
    "release-eng": {"primary": "U0ENG1", "delegates": ["U0ENG2"]},
    "payments-risk": {"primary": "U0RISK1"},
    "security": {"primary": "U0SEC1", "delegates": ["U0SEC2"]},
}

GATES: dict[str, Any] = {
    "auth-success": {"query": "q1", "pass": ">= 0.995", "on_fail": "rollback_cohort"},
    "latency": {"query": "q2", "pass": "<= 0.25", "on_fail": "hold"},
    "parity": {"query": "q3", "pass": ">= 0.999", "on_fail": "pause"},
    "fallback": {"query": "q4", "pass": ">= 1", "on_fail": "freeze"},
    "doom": {"query": "q5", "pass": ">= 1", "on_fail": "global_rollback"},
}

CUTOVER: list[dict[str, Any]] = [
    {"id": "prep", "title": "Prepare", "owner": "release-eng", "observers": ["security"]},
    {
        "id": "canary",
        "title": "Shift merchant cohort A",
        "owner": "release-eng",
        "after": ["prep"],
        "traffic": {"percent": 1, "cohort": "merchant-a"},
        "soak": "20m",
        "gates": ["auth-success", "latency"],
    },
    {
        "id": "widen",
        "title": "Release to widen",
        "owner": "release-authority",
        "after": ["canary"],
        "hold": {"release_by": ["release-authority"]},
    },
    {
        "id": "retire",
        "title": "Retire the legacy vault path",
        "owner": "release-authority",
        "after": ["widen"],
        "protected": True,
        "hold": {"release_by": ["release-authority", "payments-risk"], "mode": "all"},
    },
]


def make_plan(
    checkpoints: list[dict[str, Any]] | None = None,
    *,
    gates: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
    authority: dict[str, Any] | None = None,
    roles: dict[str, Any] | None = None,
    hypercare: dict[str, Any] | None = None,
) -> Plan:
    extra = {"hypercare": hypercare} if hypercare is not None else {}
    return Plan.model_validate(
        {
            **extra,
            "plan": "payments-cutover",
            "title": "Card-token lookups move to the tokenization service",
            "channel": "C0WARROOM",
            "window": {"start": T0.isoformat(), "end": (T0 + timedelta(hours=4)).isoformat()},
            "roles": roles or ROLES,
            "authority": authority
            or {
                "signoff": ["release-authority", "payments-risk"],
                "adopt_packets": ["release-authority"],
                "change_delegates": ["release-authority"],
                "start_and_rollback": ["release-authority", "release-eng"],
            },
            "gate_policy": policy or {"interval": "1m", "consecutive_passes": 2, "no_data": "fail"},
            "gates": GATES if gates is None else gates,
            "checkpoints": CUTOVER if checkpoints is None else checkpoints,
        }
    )


# A cutover that ends on traffic (25 %, then 100 % of merchant-a), then two hours of hyper-care over
# every gate: every 5 minutes for the first hour, every 15 minutes for the second.
HYPERCARE_CUTOVER: list[dict[str, Any]] = [
    {"id": "prep", "title": "Prepare", "owner": "release-eng", "observers": ["security"]},
    {
        "id": "canary",
        "title": "A quarter of merchant-a",
        "owner": "release-eng",
        "after": ["prep"],
        "traffic": {"percent": 25, "cohort": "merchant-a"},
        "soak": "10m",
        "gates": ["auth-success", "latency"],
    },
    {
        "id": "full",
        "title": "All of merchant-a",
        "owner": "payments-risk",
        "after": ["canary"],
        "traffic": {"percent": 100, "cohort": "merchant-a"},
        "soak": "10m",
        "gates": ["auth-success", "latency"],
    },
]
HYPERCARE: dict[str, Any] = {"cadence": [{"every": "5m", "until": "1h"}, {"every": "15m", "until": "2h"}]}


def make_packet(
    plan: Plan,
    *,
    version: int = 1,
    state: PacketState = PacketState.AUTHORITATIVE,
    conflicts: dict[str, str] | None = None,
    register: bool = True,
) -> Packet:
    """A packet in plan order, shaped like packets.timeline's: plan and conflict holds registered."""
    conflicts = conflicts or {}
    roster = Roster(plan.roles)
    timeline: list[PlannedCheckpoint] = []
    holds: list[PacketHold] = []
    start = T0
    for cp in plan.checkpoints:
        end = start + cp.planned_length
        conflict = conflicts.get(cp.id)
        held = cp.hold is not None or cp.protected or conflict is not None
        timeline.append(
            PlannedCheckpoint(
                id=cp.id,
                title=cp.title,
                owner_role=cp.owner,
                owner_user=roster.acting_user(cp.owner),
                observer_roles=tuple(cp.observers),
                observer_users=tuple(roster.acting_user(r) for r in cp.observers),
                start=start,
                end=end,
                protected=cp.protected,
                after=tuple(cp.after),
                held=held,
                conflict=conflict,
            )
        )
        if register and cp.hold is not None:
            holds.append(
                PacketHold(
                    id=f"{cp.id}/plan",
                    checkpoint=cp.id,
                    reason=cp.hold.reason or f"{cp.title}: release",
                    source=HoldSource.PLAN,
                    release_by=tuple(cp.hold.release_by),
                    mode=cp.hold.mode,
                )
            )
        elif register and cp.protected:
            holds.append(
                PacketHold(
                    id=f"{cp.id}/plan",
                    checkpoint=cp.id,
                    reason=f"{cp.title} is protected",
                    source=HoldSource.PLAN,
                    release_by=tuple(plan.authority.adopt_packets),
                )
            )
        if register and conflict is not None:
            holds.append(
                PacketHold(
                    id=f"{cp.id}/conflict",
                    checkpoint=cp.id,
                    reason=conflict,
                    source=HoldSource.CONFLICT,
                    release_by=tuple(plan.authority.adopt_packets),
                )
            )
        start = end
    return Packet(
        version=version,
        plan_revision=plan.revision,
        timeline=tuple(timeline),
        holds=tuple(holds),
        reason="test",
        supersedes=version - 1 if version > 1 else None,
        state=state,
    )


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


@dataclass
class WarRoom:
    """Steps the real engine and records everything it was asked to do."""

    plan: Plan
    packet: Packet
    roster: Roster
    progress: RunProgress
    effects: list[Effect] = field(default_factory=list)
    last: Transition | None = None

    @classmethod
    def open(cls, plan: Plan | None = None, packet: Packet | None = None) -> WarRoom:
        plan = plan or make_plan()
        packet = packet or make_packet(plan)
        progress = new_run(run_id="run-1", plan=plan, packet=packet, at=T0)
        return cls(plan=plan, packet=packet, roster=Roster(plan.roles), progress=progress)

    def do(self, event: Event, *, packet: Packet | None = None) -> Transition:
        transition = step(
            self.progress, event, plan=self.plan, packet=packet or self.packet, roster=self.roster
        )
        self.progress = transition.progress
        self.effects.extend(transition.effects)
        self.last = transition
        return transition

    # -- shortcuts for the usual steps ---------------------------------------------------------

    def sign_off(self) -> WarRoom:
        for role in self.plan.authority.signoff:
            user = self.roster.acting_user(role)
            self.do(SignoffGiven(at=T0, user=user, role=role, revision=self.plan.revision))
        return self

    def start(self, at: datetime = T0) -> WarRoom:
        self.do(Start(at=at, user="U0REL1"))
        return self

    def confirm_shifts(self, at: datetime) -> None:
        assert self.last is not None
        for shift in self.last.of(ShiftTraffic):
            self.do(
                ActuationSucceeded(
                    at=at, checkpoint=shift.checkpoint, cohort=shift.cohort, percent=shift.percent
                )
            )

    def results(self, checkpoint: str, at: datetime, **outcomes: str | float | None) -> Transition:
        """Gate results by gate name (dashes as underscores): a number is measured, 'no-data' is none."""
        results = []
        for name, value in outcomes.items():
            gate = name.replace("_", "-")
            if value == "no-data" or value is None:
                results.append(GateResult(gate=gate, outcome=Outcome.NO_DATA, reason="no series"))
            elif value == "pass":
                results.append(GateResult(gate=gate, outcome=Outcome.PASS, value=1.0, reason="ok"))
            elif value == "fail":
                results.append(GateResult(gate=gate, outcome=Outcome.FAIL, value=0.0, reason="bad"))
            else:
                raise AssertionError(value)
        return self.do(GateResults(at=at, checkpoint=checkpoint, results=tuple(results)))

    def canary_running(self) -> WarRoom:
        """Signed, started, prep done, canary shifted to 1% and confirmed, soaking."""
        self.sign_off().start()
        self.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
        self.confirm_shifts(minutes(5))
        return self

    def canary_passed(self) -> WarRoom:
        self.canary_running()
        self.results("canary", minutes(10), auth_success="pass", latency="pass")
        self.results("canary", minutes(11), auth_success="pass", latency="pass")
        self.do(Tick(at=minutes(26)))
        return self

    def in_hypercare(self) -> WarRoom:
        """The hyper-care cutover run to its end: 100 % confirmed at minute 15, full done at 25."""
        self.sign_off().start()
        self.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
        self.confirm_shifts(minutes(5))
        self.results("canary", minutes(6), auth_success="pass", latency="pass")
        self.results("canary", minutes(7), auth_success="pass", latency="pass")
        self.do(Tick(at=minutes(15)))
        self.confirm_shifts(minutes(15))
        self.results("full", minutes(16), auth_success="pass", latency="pass")
        self.results("full", minutes(17), auth_success="pass", latency="pass")
        self.do(Tick(at=minutes(25)))
        assert self.state() is RunState.HYPERCARE
        return self

    def state(self) -> RunState:
        # A call, not an attribute: mypy would keep an earlier `assert ... is` narrowing otherwise.
        return self.progress.state

    def cp(self, checkpoint: str) -> CheckpointState:
        return self.progress.checkpoints[checkpoint].state

    def open_hold_ids(self) -> list[str]:
        return [h.id for h in self.progress.open_holds()]

    def ledger_kinds(self, transition: Transition | None = None) -> list[str]:
        return [e.kind for e in (transition or self.last or Transition(self.progress, ())).of(Ledger)]


def hypercare_room(hypercare: dict[str, Any] | None = None) -> WarRoom:
    return WarRoom.open(make_plan(HYPERCARE_CUTOVER, hypercare=hypercare or HYPERCARE))


def reach(state: RunState) -> WarRoom:
    if state is RunState.HYPERCARE:
        return hypercare_room().in_hypercare()
    room = WarRoom.open()
    if state is RunState.AWAITING_SIGNOFF:
        return room
    if state is RunState.READY:
        return room.sign_off()
    room.canary_running()
    at = minutes(6)
    if state is RunState.RUNNING:
        return room
    if state is RunState.PAUSED:
        room.do(Pause(at=at, user="U0REL1", reason="looking at dashboards"))
    elif state is RunState.HELD:
        room.do(HoldOpened(at=at, user="U0SEC1", reason="odd error rate"))
    elif state is RunState.FROZEN:
        room.do(Freeze(at=at, user="U0REL1", reason="fallback unhealthy"))
    elif state is RunState.ROLLING_BACK:
        room.do(RollbackRequested(at=at, user="U0REL1", scope="all", reason="abandon"))
    elif state is RunState.ROLLED_BACK:
        room.do(RollbackRequested(at=at, user="U0REL1", scope="all", reason="abandon"))
        room.confirm_shifts(minutes(7))
    elif state is RunState.COMPLETED:
        room = WarRoom.open(make_plan([CUTOVER[0]]))
        room.sign_off().start()
        room.do(CheckpointDone(at=at, checkpoint="prep", user="U0ENG1"))
    elif state is RunState.ABORTED:
        room = WarRoom.open().sign_off()
        room.do(Abort(at=at, user="U0REL1", reason="change freeze declared"))
    assert room.progress.state is state, (state, room.progress.state)
    return room


def row(state: RunState, event: type[Any]) -> Row[Any]:
    found = row_for(state, event)
    assert found is not None
    return found


def allowed(state: RunState, event: type[Any], after: RunState) -> bool:
    return row(state, event).allows(state, after)


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
    transition = room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    assert room.cp("prep") is CheckpointState.DONE
    assert room.progress.checkpoints["prep"].done_by == ("U0ENG1",)
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
    assert [s.percent for s in transition.of(ShiftTraffic)] == [1.0]


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
    retried = room.do(HoldReleased(at=minutes(9), hold_id=opened.hold.id, user="U0ENG1"))
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
    assert told.kind == "actuation_failed" and set(told.users) == {"U0REL1", "U0ENG1"}


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


HC_END = minutes(25 + 120)  # hyper-care began at minute 25 and lasts two hours


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
    (told,) = [n for n in transition.of(Notify) if n.kind == "gate_failed"]
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
    with pytest.raises(Refusal):
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
]


def test_every_row_of_the_transition_table_has_a_test_of_its_own() -> None:
    assert {row(state, event) for state, event, _ in ROW_TESTS} == set(TABLE)
    assert len({test for _, _, test in ROW_TESTS}) == len(TABLE)


# == the rules of the issue ======================================================================


def test_a_run_cannot_start_until_every_signoff_role_signed_the_exact_revision() -> None:
    room = WarRoom.open()
    with pytest.raises(IllegalTransition, match=r"payments-risk \(acting: U0RISK1\)"):
        room.do(Start(at=T0, user="U0REL1"))
    room.do(SignoffGiven(at=T0, user="U0REL1", role="release-authority", revision=room.plan.revision))
    with pytest.raises(Refusal, match="inherits no sign-off"):
        room.do(SignoffGiven(at=T0, user="U0RISK1", role="payments-risk", revision="0" * 64))
    with pytest.raises(IllegalTransition):
        room.do(Start(at=T0, user="U0REL1"))
    room.do(SignoffGiven(at=T0, user="U0RISK1", role="payments-risk", revision=room.plan.revision))
    room.do(Start(at=T0, user="U0REL1"))
    assert room.progress.state is RunState.RUNNING


def test_a_signoff_by_someone_not_acting_for_the_role_is_refused() -> None:
    room = WarRoom.open()
    with pytest.raises(Refusal, match="U0REL1 acts for it"):
        room.do(SignoffGiven(at=T0, user="U0REL2", role="release-authority", revision=room.plan.revision))
    with pytest.raises(Refusal, match="does not sign off"):
        room.do(SignoffGiven(at=T0, user="U0SEC1", role="security", revision=room.plan.revision))


def test_one_person_acting_for_two_signoff_roles_signs_off_once() -> None:
    roster = Roster(make_plan().roles)
    room = WarRoom.open()
    room.roster = roster.switch(
        by_user="U0REL1", role="release-authority", to_user="U0REL2", change_roles=["release-authority"]
    )
    room.do(SignoffGiven(at=T0, user="U0REL2", role="release-authority", revision=room.plan.revision))
    with pytest.raises(Refusal, match="already signed off"):
        room.do(SignoffGiven(at=T0, user="U0REL2", role="release-authority", revision=room.plan.revision))


def test_only_a_start_role_may_start() -> None:
    room = WarRoom.open().sign_off()
    with pytest.raises(
        Refusal, match=r"release-authority \(acting: U0REL1\) or release-eng \(acting: U0ENG1\)"
    ):
        room.do(Start(at=T0, user="U0RISK1"))
    assert room.progress.state is RunState.READY


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


def test_a_hold_checkpoint_is_released_only_by_the_acting_user_of_its_release_role() -> None:
    room = WarRoom.open().canary_passed()
    with pytest.raises(Refusal, match=r"release-authority \(acting: U0REL1\)"):
        room.do(HoldReleased(at=minutes(30), hold_id="widen/plan/1", user="U0REL2"))
    with pytest.raises(Refusal):
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
    with pytest.raises(Refusal, match="different person"):
        room.do(HoldReleased(at=minutes(32), hold_id=retire, user="U0REL1"))
    transition = room.do(HoldReleased(at=minutes(33), hold_id=retire, user="U0RISK1"))
    assert transition.of(CloseHold)[0].by == ("U0REL1", "U0RISK1")
    assert room.progress.state is RunState.COMPLETED


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
    with pytest.raises(Refusal, match="different person"):
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
    assert [s.percent for s in released.of(ShiftTraffic)] == [100]


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
    room.confirm_shifts(minutes(1))
    return room


def test_a_pause_gate_stops_advancing_until_an_authority_resumes() -> None:
    room = _gated()
    room.results("canary", minutes(2), parity="fail")
    assert room.progress.state is RunState.PAUSED
    assert room.progress.paused is not None and room.progress.paused.by == "gate:parity"
    with pytest.raises(Refusal):
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
    with pytest.raises(Refusal):
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


def test_a_failed_actuation_never_counts_as_done() -> None:
    room = WarRoom.open().sign_off().start()
    room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    room.results("canary", minutes(10), auth_success="pass", latency="pass")
    room.results("canary", minutes(11), auth_success="pass", latency="pass")
    room.do(
        ActuationFailed(at=minutes(12), checkpoint="canary", cohort="merchant-a", percent=1, detail="refused")
    )
    room.do(Tick(at=minutes(60)))
    assert room.cp("canary") is CheckpointState.HELD
    # A late success for the refused command is a stale report: on record, changes nothing.
    late = room.do(ActuationSucceeded(at=minutes(61), checkpoint="canary", cohort="merchant-a", percent=1))
    assert room.ledger_kinds(late) == [LedgerKind.ACTUATION_REPORT_IGNORED]
    assert room.cp("canary") is CheckpointState.HELD


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
    with pytest.raises(Refusal, match=r"release-eng \(acting: U0ENG1\)"):
        room.do(CheckpointDone(at=minutes(11), checkpoint="drain", user="U0REL1"))
    room.do(CheckpointDone(at=minutes(11), checkpoint="drain", user="U0ENG1"))
    assert room.progress.state is RunState.COMPLETED


def test_a_gated_checkpoint_is_not_marked_done_by_hand() -> None:
    room = WarRoom.open().canary_running()
    with pytest.raises(IllegalTransition, match="gates pass"):
        room.do(CheckpointDone(at=minutes(40), checkpoint="canary", user="U0ENG1"))


def test_a_proposed_packet_changes_nothing_until_it_is_adopted() -> None:
    room = WarRoom.open().canary_running()
    v2 = make_packet(room.plan, version=2, state=PacketState.PROPOSED)
    with pytest.raises(Refusal, match="follows packet v1"):
        room.do(Tick(at=minutes(30)), packet=v2)
    with pytest.raises(Refusal, match="adopt"):
        room.do(PacketAdopted(at=minutes(30), version=2, user="U0ENG1"), packet=v2)
    room.do(PacketAdopted(at=minutes(30), version=2, user="U0REL1"), packet=v2)
    assert room.progress.packet_version == 2
    with pytest.raises(Refusal, match="follows packet v2"):
        room.do(Tick(at=minutes(31)))


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
    released = room.do(HoldReleased(at=minutes(6), hold_id=hold.id, user="U0REL1"))
    assert [s.percent for s in released.of(ShiftTraffic)] == [1]


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
    (hold,) = room.progress.open_holds()
    assert "not_after" in hold.reason


def test_a_retry_after_a_cohort_rollback_waits_until_its_failing_gate_passes() -> None:
    room = WarRoom.open().canary_running()
    room.results("canary", minutes(6), auth_success="fail", latency="pass")
    (hold,) = room.open_hold_ids()
    released = room.do(HoldReleased(at=minutes(7), hold_id=hold, user="U0REL1"))
    assert released.of(ShiftTraffic) == ()
    assert room.cp("canary") is CheckpointState.READY
    again = room.results("canary", minutes(8), auth_success="pass", latency="pass")
    (shift,) = again.of(ShiftTraffic)
    assert shift.percent == 1
    assert room.progress.checkpoints["canary"].evidence == {}  # a fresh streak for the new attempt
    assert room.progress.checkpoints["canary"].attempt == 2


def test_results_for_a_checkpoint_not_in_flight_change_nothing_but_are_recorded() -> None:
    room = WarRoom.open().canary_running()
    before = room.progress
    transition = room.results("prep", minutes(6), latency="fail")
    assert transition.progress == before
    assert room.ledger_kinds(transition) == [LedgerKind.GATE_RESULTS_IGNORED]


def test_a_hold_release_of_an_unknown_or_closed_hold_is_illegal() -> None:
    room = WarRoom.open().canary_passed()
    with pytest.raises(IllegalTransition, match="no hold nope"):
        room.do(HoldReleased(at=minutes(30), hold_id="nope", user="U0REL1"))


def test_an_abort_with_traffic_on_the_new_path_is_illegal() -> None:
    room = WarRoom.open().canary_running()
    with pytest.raises(IllegalTransition, match="roll back instead"):
        room.do(Abort(at=minutes(8), user="U0REL1", reason="stop"))


def test_a_cohort_rollback_with_no_cohort_in_flight_is_illegal() -> None:
    room = WarRoom.open().sign_off().start()
    with pytest.raises(IllegalTransition, match="no cohort is in flight at prep"):
        room.do(RollbackRequested(at=minutes(1), user="U0REL1", scope="cohort", reason="x"))


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
        PacketAdopted: PacketAdopted(at=T0, version=2, user="U0REL1"),
        Pause: Pause(at=T0, user="U0REL1", reason="x"),
        Resume: Resume(at=T0, user="U0REL1"),
        Freeze: Freeze(at=T0, user="U0REL1", reason="x"),
        Unfreeze: Unfreeze(at=T0, user="U0REL1"),
        RollbackRequested: RollbackRequested(at=T0, user="U0REL1", scope="all", reason="x"),
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


def test_progress_round_trips_through_plain_json() -> None:
    room = WarRoom.open().canary_running()
    room.results("canary", minutes(6), auth_success="pass", latency="no-data")
    room.do(HoldOpened(at=minutes(7), user="U0SEC1", reason="hold"))
    room.do(Pause(at=minutes(7), user="U0REL1", reason="pause"))
    text = json.dumps(room.progress.as_json())
    assert RunProgress.from_json(json.loads(text)) == room.progress


def test_a_free_text_secret_never_reaches_state_or_effects() -> None:
    room = WarRoom.open().canary_running()
    transition = room.do(HoldOpened(at=minutes(7), user="U0SEC1", reason="token=hunter2 in the logs"))
    (opened,) = transition.of(OpenHold)
    assert "hunter2" not in opened.hold.reason
    assert "hunter2" not in json.dumps(room.progress.as_json())


# == hyper-care ==================================================================================


def test_without_hyper_care_the_run_completes_with_its_last_checkpoint() -> None:
    room = WarRoom.open(make_plan(HYPERCARE_CUTOVER))
    room.sign_off().start()
    room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    room.confirm_shifts(minutes(5))
    room.results("canary", minutes(6), auth_success="pass", latency="pass")
    room.results("canary", minutes(7), auth_success="pass", latency="pass")
    room.do(Tick(at=minutes(15)))
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
    (told,) = [n for n in transition.of(Notify) if n.kind == "hypercare_started"]
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


def test_progress_in_hyper_care_round_trips_through_plain_json() -> None:
    room = reach(RunState.HYPERCARE)
    room.results("hypercare", minutes(30), latency="pass", parity="no-data")
    assert room.progress.hypercare_since is not None and room.progress.hypercare_evidence
    text = json.dumps(room.progress.as_json())
    assert RunProgress.from_json(json.loads(text)) == room.progress
    older = {k: v for k, v in json.loads(text).items() if not k.startswith("hypercare")}
    assert RunProgress.from_json(older).hypercare_since is None  # rows saved before hyper-care existed


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
