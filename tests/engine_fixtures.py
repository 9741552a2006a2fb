"""The miniature payments cutover and the `WarRoom` the engine tests step it in.

The plan here is the payments cutover in miniature: a plain preparation checkpoint, a gated
canary that shifts merchant-a to 1%, a hold to widen, and the protected legacy retirement that
needs two people. `WarRoom` steps the real engine with a real `authority.Roster` and records
every effect it is asked to carry out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from packets.authority import Roster
from packets.engine.effects import (
    Effect,
    Ledger,
    ShiftTraffic,
)
from packets.engine.events import (
    Abort,
    ActuationSucceeded,
    CheckpointDone,
    Event,
    Freeze,
    GateResults,
    HoldOpened,
    Pause,
    RollbackRequested,
    SignoffGiven,
    Start,
    Tick,
)
from packets.engine.progress import CheckpointState, RunProgress, RunState
from packets.engine.table import Row, Transition, new_run, row_for, step
from packets.gates import GateResult, Outcome
from packets.packet import HoldSource, Packet, PacketHold, PacketState, PlannedCheckpoint
from packets.plan import Plan

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
                    checkpoint=cp.id,
                    reason=f"{cp.title} is protected",
                    source=HoldSource.PLAN,
                    release_by=tuple(plan.authority.adopt_packets),
                )
            )
        if register and conflict is not None:
            holds.append(
                PacketHold(
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
        # Check before moving: the canary's gates are read for its shift, then it goes out.
        self.results("canary", minutes(5), auth_success="pass", latency="pass")
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
        self.results("canary", minutes(5), auth_success="pass", latency="pass")
        self.confirm_shifts(minutes(5))
        self.results("canary", minutes(6), auth_success="pass", latency="pass")
        self.results("canary", minutes(7), auth_success="pass", latency="pass")
        self.do(Tick(at=minutes(15)))
        self.results("full", minutes(15), auth_success="pass", latency="pass")
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
    elif state is RunState.SUPERSEDED:
        room = WarRoom.open().sign_off()
        room.do(Abort(at=at, user="U0REL1", reason="artifact rebuilt", superseded_by="payments-rc4"))
    assert room.progress.state is state, (state, room.progress.state)
    return room


def row(state: RunState, event: type[Any]) -> Row[Any]:
    found = row_for(state, event)
    assert found is not None
    return found


def allowed(state: RunState, event: type[Any], after: RunState) -> bool:
    return row(state, event).allows(state, after)


HC_END = minutes(25 + 120)  # hyper-care began at minute 25 and lasts two hours
