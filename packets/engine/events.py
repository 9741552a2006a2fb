"""What happens to a run, as values the stage engine steps on.

Every event carries `at`, the moment it happened as the caller's clock saw it: the engine never
reads a clock. Events caused by a person carry `user`, the Slack user id that acted; the engine
checks that user against the plan's roles and the run's acting roster. Free text (reasons,
actuator details) is redacted by the engine before it lands in state or effects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

from packets.gates import GateResult

RollbackScope = Literal["cohort", "all"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SignoffGiven:
    kind: ClassVar[str] = "signoff"
    at: datetime
    user: str
    revision: str
    # None: the first sign-off role the user acts for and has not signed yet (the engine picks it).
    role: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    kind: ClassVar[str] = "start"
    at: datetime
    user: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    kind: ClassVar[str] = "tick"
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class GateResults:
    kind: ClassVar[str] = "gate_results"
    at: datetime
    checkpoint: str
    results: tuple[GateResult, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointDone:
    kind: ClassVar[str] = "checkpoint_done"
    at: datetime
    checkpoint: str
    user: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldOpened:
    """`/cutover hold`: anyone acting for a plan role may stop the line."""

    kind: ClassVar[str] = "hold"
    at: datetime
    user: str
    reason: str
    # None: the checkpoint in flight, or the run as a whole when nothing is in flight.
    checkpoint: str | None = None
    # Empty: the roles that may start and roll back the run release it.
    release_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldReleased:
    kind: ClassVar[str] = "release"
    at: datetime
    hold_id: str
    user: str
    # How it was resolved, in the releaser's words (a bundle waiver: "firmware 7.4 rolled out").
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseWithdrawn:
    """A person takes back their own release of a hold that is still open (a `mode: all` hold
    waiting for its second person): it needs their role again."""

    kind: ClassVar[str] = "unrelease"
    at: datetime
    hold_id: str
    user: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PacketAdopted:
    kind: ClassVar[str] = "adopt"
    at: datetime
    version: int
    user: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause:
    kind: ClassVar[str] = "pause"
    at: datetime
    user: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume:
    kind: ClassVar[str] = "resume"
    at: datetime
    user: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Freeze:
    kind: ClassVar[str] = "freeze"
    at: datetime
    user: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Unfreeze:
    kind: ClassVar[str] = "unfreeze"
    at: datetime
    user: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackRequested:
    kind: ClassVar[str] = "rollback"
    at: datetime
    user: str
    scope: RollbackScope
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Restore:
    """`/cutover restore COHORT` during hyper-care: put a cohort left short by a rollback back to
    the plan's final percent, vouched for by `readings` taken for it (check before moving)."""

    kind: ClassVar[str] = "restore"
    at: datetime
    user: str
    cohort: str
    readings: tuple[GateResult, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ActuationSucceeded:
    """The traffic control plane confirmed a `ShiftTraffic` (matched on cohort and percent)."""

    kind: ClassVar[str] = "actuation_succeeded"
    at: datetime
    checkpoint: str | None
    cohort: str
    percent: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ActuationFailed:
    """The traffic control plane refused a `ShiftTraffic` (matched on cohort and percent)."""

    kind: ClassVar[str] = "actuation_failed"
    at: datetime
    checkpoint: str | None
    cohort: str
    percent: float
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Abort:
    """Call the run off. Only while no traffic is on the new path: otherwise it is a rollback."""

    kind: ClassVar[str] = "abort"
    at: datetime
    user: str
    reason: str
    # The run of the newer revision that replaces this one: the run ends `superseded`, not aborted.
    superseded_by: str | None = None


Event = (
    SignoffGiven
    | Start
    | Tick
    | GateResults
    | CheckpointDone
    | HoldOpened
    | HoldReleased
    | ReleaseWithdrawn
    | PacketAdopted
    | Pause
    | Resume
    | Freeze
    | Unfreeze
    | RollbackRequested
    | Restore
    | ActuationSucceeded
    | ActuationFailed
    | Abort
)

EVENT_TYPES: tuple[type[Event], ...] = (
    SignoffGiven,
    Start,
    Tick,
    GateResults,
    CheckpointDone,
    HoldOpened,
    HoldReleased,
    PacketAdopted,
    Pause,
    Resume,
    Freeze,
    Unfreeze,
    RollbackRequested,
    Restore,
    ActuationSucceeded,
    ActuationFailed,
    Abort,
)


def actor_of(event: Event) -> str:
    """The user behind an event, or `engine` for the clock, telemetry and the control plane."""
    user = getattr(event, "user", None)
    return user if isinstance(user, str) else "engine"
