"""The run's whole engine state as one value: `RunProgress`, with a plain-JSON round trip.

The store keeps `RunProgress.as_json()` in a JSON column and hands `from_json` back to the engine
on the next event, so everything here is plain data: no plan, no packet, no roster inside (those
are passed to every step), times as ISO strings with their offsets.

`traffic` is what the engine has *commanded* per cohort. A command waits in `pending` until the
control plane confirms or refuses it; a refused rise puts the cohort back where it was.

`hypercare_since` is set when the last checkpoint completed and the plan declares hyper-care: from
then on the run is in its hyper-care phase (state `hypercare`, or paused, held or frozen during
it), and its hyper-care gate results are kept in `hypercare_evidence`, the evidence of the
pseudo-checkpoint `hypercare`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from packets.authority import ReleaseMode
from packets.gates import GateResult, GateTally
from packets.packet import HoldSource
from packets.plan import HYPERCARE_CHECKPOINT


class RunState(StrEnum):
    AWAITING_SIGNOFF = "awaiting_signoff"
    READY = "ready"
    RUNNING = "running"
    PAUSED = "paused"
    HELD = "held"
    FROZEN = "frozen"
    # Every checkpoint is done; gate checks go on at the plan's hyper-care cadence until it ends.
    HYPERCARE = "hypercare"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    COMPLETED = "completed"
    ABORTED = "aborted"
    # Called off for a newer revision of the same bundle (`/cutover supersede`); never reopened.
    SUPERSEDED = "superseded"

    @property
    def words(self) -> str:
        """The state as a sentence reads it: "the run is {words}"."""
        return _RUN_STATE_WORDS.get(self, self.value.replace("_", " "))


_RUN_STATE_WORDS = {RunState.AWAITING_SIGNOFF: "awaiting sign-off", RunState.HYPERCARE: "in hyper-care"}


TERMINAL: frozenset[RunState] = frozenset(
    {RunState.ROLLED_BACK, RunState.COMPLETED, RunState.ABORTED, RunState.SUPERSEDED}
)


class CheckpointState(StrEnum):
    PENDING = "pending"  # its turn has not come
    READY = "ready"  # its turn: waiting for its not_before, or for a failing gate to recover
    HELD = "held"  # waiting on a hold before it runs (plan, protected, conflict, rollback)
    ACTIVE = "active"  # running without traffic: owner's work, or gates being checked
    SOAKING = "soaking"  # traffic shifted; soaking while its gates are checked
    DONE = "done"
    FAILED = "failed"  # in flight when the run was rolled back or aborted
    SKIPPED = "skipped"  # never ran: the run ended first


IN_FLIGHT: frozenset[CheckpointState] = frozenset(
    {CheckpointState.READY, CheckpointState.HELD, CheckpointState.ACTIVE, CheckpointState.SOAKING}
)


class HoldState(StrEnum):
    OPEN = "open"
    RELEASED = "released"
    # Closed by the engine because the run ended (rollback, abort), not released by anyone.
    WITHDRAWN = "withdrawn"


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Signoff:
    role: str
    user: str
    revision: str
    at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"role": self.role, "user": self.user, "revision": self.revision, "at": self.at.isoformat()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Signoff:
        return cls(
            role=data["role"],
            user=data["user"],
            revision=data["revision"],
            at=datetime.fromisoformat(data["at"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """One person's release of a hold, as one role; `acting_for` is the primary a delegate stood in for."""

    user: str
    role: str
    at: datetime
    acting_for: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "role": self.role,
            "at": self.at.isoformat(),
            "acting_for": self.acting_for,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Release:
        return cls(
            user=data["user"],
            role=data["role"],
            at=datetime.fromisoformat(data["at"]),
            acting_for=data.get("acting_for"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldRecord:
    id: str
    checkpoint: str | None
    reason: str
    source: HoldSource
    release_by: tuple[str, ...]
    mode: ReleaseMode
    opened_at: datetime
    opened_by: str
    releases: tuple[Release, ...] = ()
    # When it stopped holding: released by people, or withdrawn because the run ended.
    released_at: datetime | None = None
    state: HoldState = HoldState.OPEN

    @property
    def is_open(self) -> bool:
        return self.state is HoldState.OPEN

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "checkpoint": self.checkpoint,
            "reason": self.reason,
            "source": str(self.source),
            "release_by": list(self.release_by),
            "mode": self.mode,
            "opened_at": self.opened_at.isoformat(),
            "opened_by": self.opened_by,
            "releases": [r.as_json() for r in self.releases],
            "released_at": _time(self.released_at),
            "state": str(self.state),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HoldRecord:
        mode: ReleaseMode = "all" if data["mode"] == "all" else "any"
        return cls(
            id=data["id"],
            checkpoint=data["checkpoint"],
            reason=data["reason"],
            source=HoldSource(data["source"]),
            release_by=tuple(data["release_by"]),
            mode=mode,
            opened_at=datetime.fromisoformat(data["opened_at"]),
            opened_by=data["opened_by"],
            releases=tuple(Release.from_json(r) for r in data["releases"]),
            released_at=_parse_time(data.get("released_at")),
            state=HoldState(data["state"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointProgress:
    state: CheckpointState = CheckpointState.PENDING
    started_at: datetime | None = None
    soak_until: datetime | None = None
    done_at: datetime | None = None
    # The people who completed it (owner's done, hold releasers), or ("engine",) when its gates did.
    done_by: tuple[str, ...] = ()
    # Per gate, the last `consecutive_passes` counted results of the current attempt.
    evidence: dict[str, tuple[GateResult, ...]] = field(default_factory=dict)
    # Per gate, its failures in the current attempt (`for`, `failure_limit`, readiness).
    tallies: dict[str, GateTally] = field(default_factory=dict)
    # How many times its traffic was shifted (or its work started); a retry starts a fresh streak.
    attempt: int = 0
    # The cohort's percent before this checkpoint's latest shift: where rollback_cohort returns it.
    previous_percent: float | None = None
    shift_confirmed: bool = False
    # Its holds before running were released once; they are not opened again for a retry.
    cleared: bool = False
    # When the engine first wanted to raise its traffic and found no fresh passing reading of every
    # gate that must vouch for it: only readings taken from then on count for that shift.
    shift_due_since: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return (
            {
                "state": str(self.state),
                "started_at": _time(self.started_at),
                "soak_until": _time(self.soak_until),
                "done_at": _time(self.done_at),
                "done_by": list(self.done_by),
                "evidence": {gate: [r.as_json() for r in rs] for gate, rs in self.evidence.items()},
                "attempt": self.attempt,
                "previous_percent": self.previous_percent,
                "shift_confirmed": self.shift_confirmed,
                "cleared": self.cleared,
            }
            | _tallies_json(self.tallies)
            | ({"shift_due_since": _time(self.shift_due_since)} if self.shift_due_since else {})
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckpointProgress:
        previous = data.get("previous_percent")
        return cls(
            state=CheckpointState(data["state"]),
            started_at=_parse_time(data.get("started_at")),
            soak_until=_parse_time(data.get("soak_until")),
            done_at=_parse_time(data.get("done_at")),
            done_by=tuple(data.get("done_by", ())),
            evidence={g: tuple(GateResult.from_json(r) for r in rs) for g, rs in data["evidence"].items()},
            attempt=data.get("attempt", 0),
            previous_percent=float(previous) if previous is not None else None,
            shift_confirmed=data.get("shift_confirmed", False),
            cleared=data.get("cleared", False),
            tallies=_tallies(data.get("tallies")),
            shift_due_since=_parse_time(data.get("shift_due_since")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop:
    """A pause or a freeze: who (a user or `gate:<name>`), why, when."""

    by: str
    reason: str
    at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"by": self.by, "reason": self.reason, "at": self.at.isoformat()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Stop | None:
        if data is None:
            return None
        return cls(by=data["by"], reason=data["reason"], at=datetime.fromisoformat(data["at"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class TrafficChange:
    """One commanded change of one cohort; `key` is the idempotency key of its ShiftTraffic."""

    key: str
    checkpoint: str | None
    percent: float
    previous_percent: float
    at: datetime
    cause: str  # advance | rollback_cohort | global_rollback
    # None while the control plane has not answered; then confirmed or refused.
    confirmed: bool | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "checkpoint": self.checkpoint,
            "percent": self.percent,
            "previous_percent": self.previous_percent,
            "at": self.at.isoformat(),
            "cause": self.cause,
            "confirmed": self.confirmed,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrafficChange:
        return cls(
            key=data["key"],
            checkpoint=data["checkpoint"],
            percent=float(data["percent"]),
            previous_percent=float(data["previous_percent"]),
            at=datetime.fromisoformat(data["at"]),
            cause=data["cause"],
            confirmed=data.get("confirmed"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RunProgress:
    run_id: str
    plan_revision: str
    packet_version: int
    state: RunState
    opened_at: datetime
    signoffs: dict[str, Signoff] = field(default_factory=dict)
    started_at: datetime | None = None
    started_by: str | None = None
    checkpoints: dict[str, CheckpointProgress] = field(default_factory=dict)
    traffic: dict[str, float] = field(default_factory=dict)
    # Per cohort, every commanded change in order; the last one is the command in force.
    traffic_history: dict[str, tuple[TrafficChange, ...]] = field(default_factory=dict)
    holds: dict[str, HoldRecord] = field(default_factory=dict)
    paused: Stop | None = None
    frozen: Stop | None = None
    ended_at: datetime | None = None
    end_reason: str = ""
    # When the last checkpoint completed and hyper-care began; None before (or without) it.
    hypercare_since: datetime | None = None
    # Per hyper-care gate, the last `consecutive_passes` counted results.
    hypercare_evidence: dict[str, tuple[GateResult, ...]] = field(default_factory=dict)
    hypercare_tallies: dict[str, GateTally] = field(default_factory=dict)
    # After a breach (`engine.hypercare.breached`): the moment the cadence is counted from now
    # (None: `hypercare_since`), when hyper-care ends (None: that moment plus the cadence's length),
    # and what is added to the cadence's slot numbers so none recorded before is used again.
    hypercare_clock: datetime | None = None
    hypercare_until: datetime | None = None
    hypercare_slot_base: int = 0
    # Per watched gate (`engine.watch`), its last `consecutive_passes` results, whatever they came under.
    watch_evidence: dict[str, tuple[GateResult, ...]] = field(default_factory=dict)
    # When the run last stopped (paused, held or frozen) while running or in hyper-care; None while
    # it runs. On starting again the soak in flight is pushed back by the time stopped.
    stopped_at: datetime | None = None
    # Whether a pause or a freeze was in force during the current stop (not just a hold).
    stop_deliberate: bool = False
    # When the run last started again after a pause or a freeze: the checkpoint in flight completes,
    # and the next traffic step goes out, only on `consecutive_passes` passes gathered after it.
    restarted_at: datetime | None = None

    # -- questions ------------------------------------------------------------------------------

    @property
    def in_hypercare(self) -> bool:
        """Whether the stages are over and hyper-care began (whatever stops the run now)."""
        return self.hypercare_since is not None

    def tallies_of(self, checkpoint: str) -> dict[str, GateTally]:
        if checkpoint == HYPERCARE_CHECKPOINT and self.in_hypercare:
            return self.hypercare_tallies
        found = self.checkpoints.get(checkpoint)
        return found.tallies if found is not None else {}

    def evidence_of(self, checkpoint: str) -> dict[str, tuple[GateResult, ...]]:
        """The gate evidence of a checkpoint, or of hyper-care for its pseudo-checkpoint."""
        if checkpoint == HYPERCARE_CHECKPOINT and self.in_hypercare:
            return self.hypercare_evidence
        found = self.checkpoints.get(checkpoint)
        return found.evidence if found is not None else {}

    def open_holds(self) -> tuple[HoldRecord, ...]:
        return tuple(h for h in self.holds.values() if h.is_open)

    def in_flight(self, order: Iterable[str]) -> str | None:
        """The first checkpoint in flight in `order` (the packet's timeline): "the current one"."""
        flights = self.flights(order)
        return flights[0] if flights else None

    def flights(self, order: Iterable[str]) -> tuple[str, ...]:
        """Every checkpoint in flight, in `order`: branches of the packet run side by side."""
        return tuple(
            c for c in order if (found := self.checkpoints.get(c)) is not None and found.state in IN_FLIGHT
        )

    def outstanding(self) -> dict[str, TrafficChange]:
        """Per cohort, the command in force that the control plane has not confirmed.

        A refused rise is not outstanding: the cohort went back to where it was. A refused step
        down is: the engine still wants the cohort there, and a person must retry it.
        """
        waiting: dict[str, TrafficChange] = {}
        for cohort, changes in self.traffic_history.items():
            last = changes[-1] if changes else None
            if last is not None and last.confirmed is not True and self.traffic.get(cohort) == last.percent:
                waiting[cohort] = last
        return waiting

    def with_checkpoint(self, checkpoint: str, **changes: Any) -> RunProgress:
        current = self.checkpoints.get(checkpoint, CheckpointProgress())
        return replace(self, checkpoints={**self.checkpoints, checkpoint: replace(current, **changes)})

    def with_hold(self, hold: HoldRecord) -> RunProgress:
        return replace(self, holds={**self.holds, hold.id: hold})

    # -- JSON -----------------------------------------------------------------------------------

    def as_json(self) -> dict[str, Any]:
        return (
            {
                "run_id": self.run_id,
                "plan_revision": self.plan_revision,
                "packet_version": self.packet_version,
                "state": str(self.state),
                "opened_at": self.opened_at.isoformat(),
                "signoffs": {role: s.as_json() for role, s in self.signoffs.items()},
                "started_at": _time(self.started_at),
                "started_by": self.started_by,
                "checkpoints": {cid: c.as_json() for cid, c in self.checkpoints.items()},
                "traffic": dict(self.traffic),
                "traffic_history": {
                    cohort: [c.as_json() for c in changes] for cohort, changes in self.traffic_history.items()
                },
                "holds": {hid: h.as_json() for hid, h in self.holds.items()},
                "paused": self.paused.as_json() if self.paused else None,
                "frozen": self.frozen.as_json() if self.frozen else None,
                "ended_at": _time(self.ended_at),
                "end_reason": self.end_reason,
                "hypercare_since": _time(self.hypercare_since),
                "hypercare_evidence": {
                    gate: [r.as_json() for r in rs] for gate, rs in self.hypercare_evidence.items()
                },
                "watch_evidence": {
                    gate: [r.as_json() for r in rs] for gate, rs in self.watch_evidence.items()
                },
            }
            | {"hypercare_" + k: v for k, v in _tallies_json(self.hypercare_tallies).items()}
            | _recovery_json(self)
            | _extension_json(self)
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunProgress:
        return cls(
            run_id=data["run_id"],
            plan_revision=data["plan_revision"],
            packet_version=data["packet_version"],
            state=RunState(data["state"]),
            opened_at=datetime.fromisoformat(data["opened_at"]),
            signoffs={role: Signoff.from_json(s) for role, s in data["signoffs"].items()},
            started_at=_parse_time(data.get("started_at")),
            started_by=data.get("started_by"),
            checkpoints={cid: CheckpointProgress.from_json(c) for cid, c in data["checkpoints"].items()},
            traffic={cohort: float(p) for cohort, p in data["traffic"].items()},
            traffic_history={
                cohort: tuple(TrafficChange.from_json(c) for c in changes)
                for cohort, changes in data["traffic_history"].items()
            },
            holds={hid: HoldRecord.from_json(h) for hid, h in data["holds"].items()},
            paused=Stop.from_json(data.get("paused")),
            frozen=Stop.from_json(data.get("frozen")),
            ended_at=_parse_time(data.get("ended_at")),
            end_reason=data.get("end_reason", ""),
            hypercare_since=_parse_time(data.get("hypercare_since")),
            hypercare_evidence={
                gate: tuple(GateResult.from_json(r) for r in rs)
                for gate, rs in data.get("hypercare_evidence", {}).items()
            },
            hypercare_tallies=_tallies(data.get("hypercare_tallies")),
            watch_evidence={
                gate: tuple(GateResult.from_json(r) for r in rs)
                for gate, rs in data.get("watch_evidence", {}).items()
            },
            hypercare_clock=_parse_time(data.get("hypercare_clock")),
            hypercare_until=_parse_time(data.get("hypercare_until")),
            hypercare_slot_base=int(data.get("hypercare_slot_base", 0)),
            stopped_at=_parse_time(data.get("stopped_at")),
            stop_deliberate=bool(data.get("stop_deliberate", False)),
            restarted_at=_parse_time(data.get("restarted_at")),
        )


def _recovery_json(progress: RunProgress) -> dict[str, Any]:
    # Left out while unset, so the progress of a run that never stopped reads as before.
    found = {
        "stopped_at": _time(progress.stopped_at),
        "stop_deliberate": progress.stop_deliberate or None,
        "restarted_at": _time(progress.restarted_at),
    }
    return {k: v for k, v in found.items() if v is not None}


def _extension_json(progress: RunProgress) -> dict[str, Any]:
    # Left out until a breach extends hyper-care, so other runs' progress reads as before.
    found = {
        "hypercare_clock": _time(progress.hypercare_clock),
        "hypercare_until": _time(progress.hypercare_until),
        "hypercare_slot_base": progress.hypercare_slot_base or None,
    }
    return {k: v for k, v in found.items() if v is not None}


def _tallies_json(tallies: Mapping[str, GateTally]) -> dict[str, Any]:
    # Left out while empty, so the progress of a run that never failed a gate reads as before.
    return {"tallies": {gate: t.as_json() for gate, t in tallies.items()}} if tallies else {}


def _tallies(data: Mapping[str, Any] | None) -> dict[str, GateTally]:
    return {gate: GateTally.from_json(t) for gate, t in (data or {}).items()}
