"""What a person (or the scheduler) asks for: one frozen value per intent, transport-independent.

Slack listeners, the CLI rehearsal and the scheduler all build these and call the matching use
case. `user` is always the Slack user id of whoever asked; the use case decides whether they may.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from packets.durations import TimeSpec


@dataclass(frozen=True, slots=True)
class OpenRun:
    plan_text: str
    source: str
    channel: str
    user: str


@dataclass(frozen=True, slots=True)
class Supersede:
    """End `run` for a newer revision of its plan (an artifact rebuilt, a cohort changed) and open
    that revision's run, linked to it."""

    run: str
    user: str
    # None: no plan of that name was found (the refusal is still the run's, on its ledger).
    plan_text: str | None
    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class SignOff:
    run: str
    user: str
    revision: str
    role: str | None = None


@dataclass(frozen=True, slots=True)
class ReportDone:
    run: str
    user: str
    checkpoint: str


@dataclass(frozen=True, slots=True)
class ReportLate:
    run: str
    user: str
    checkpoint: str
    # As typed (`23:40`, `+30m`): resolved against the plan window inside the run's transaction.
    until: TimeSpec | datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ChangeWindow:
    run: str
    user: str
    checkpoint: str
    # As typed; the close is resolved from the open (a window may cross midnight).
    not_before: TimeSpec | datetime
    not_after: TimeSpec | datetime


@dataclass(frozen=True, slots=True)
class ChangeDelegate:
    run: str
    user: str
    role: str
    to_user: str


@dataclass(frozen=True, slots=True)
class AdoptPacket:
    run: str
    user: str
    # None: the latest proposed version (typed `/cutover adopt`); a button always names one.
    version: int | None = None


@dataclass(frozen=True, slots=True)
class RejectPacket:
    run: str
    user: str
    version: int | None = None
    reason: str = ""
    # The pending changes to reject (`#3` typed as 3); none: the newest the proposal carries.
    facts: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Acknowledge:
    run: str
    user: str
    # None: the current authoritative version.
    version: int | None = None


@dataclass(frozen=True, slots=True)
class OpenHold:
    run: str
    user: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReleaseHold:
    run: str
    user: str
    hold: str
    # The packet version the button was rendered for; None when typed (no stale check).
    version: int | None = None
    # How it was resolved, in the releaser's words; kept in the ledger.
    note: str = ""


@dataclass(frozen=True, slots=True)
class WithdrawRelease:
    """Take back one's own release of a hold still open (`/cutover unrelease`)."""

    run: str
    user: str
    hold: str


class Move(StrEnum):
    """The run-wide moves a person asks the engine for by name; each becomes one engine event."""

    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    ABORT = "abort"


@dataclass(frozen=True, slots=True)
class EngineIntent:
    """One run-wide move (`Move`): the use case turns it into the engine event of the same name.

    One shape for all of them rather than a class per event that repeats the event's fields;
    `reason` is read by the moves whose events carry one (pause, freeze, abort)."""

    run: str
    user: str
    move: Move
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Rollback:
    run: str
    user: str
    scope: Literal["cohort", "all"]
    reason: str
    # The packet version the Confirm button was rendered for; None when typed in a rehearsal.
    version: int | None = None
    # The rollback request the Confirm button answers (`RequestRollback`); None in a rehearsal.
    request: str | None = None


@dataclass(frozen=True, slots=True)
class RestoreCohort:
    """`/cutover restore COHORT`: during hyper-care, a cohort short of the plan back to its final percent."""

    run: str
    user: str
    cohort: str


@dataclass(frozen=True, slots=True)
class RequestRollback:
    """A typed `/cutover rollback`: asks the room to confirm, moves nothing by itself."""

    run: str
    user: str
    scope: Literal["cohort", "all"]
    reason: str


@dataclass(frozen=True, slots=True)
class CheckGates:
    run: str


@dataclass(frozen=True, slots=True)
class Advance:
    """A clock tick with no measurements: soak timers, waiting checkpoints."""

    run: str


@dataclass(frozen=True, slots=True)
class AlertFired:
    """A firing Prometheus alert pushed by Alertmanager, naming a plan and one of its gates.

    Not a person's intent (so not in `Command`): `bot.alertmanager` hands it to
    `handlers.alerts.alert_fired`, which counts it as a failing reading of that gate now for every
    active run of the plan."""

    plan: str
    gate: str
    # The alert's name (`alertname`) and Alertmanager's fingerprint of its labels.
    alert: str
    fingerprint: str = ""
    starts_at: datetime | None = None
    # The reading the rule fired on, when its annotations carry one (`value: "{{ $value }}"`).
    value: float | None = None
    summary: str = ""


@dataclass(frozen=True, slots=True)
class ExportEvidence:
    run: str
    # Who asked in Slack (must have a role in the plan); None for the operator's CLI.
    user: str | None = None


@dataclass(frozen=True, slots=True)
class EmitManifest:
    run: str
    user: str
    # Asked for in Slack: the manifest is shared in the war room as a JSON file. The operator's
    # CLI writes it to a file or standard output.
    share: bool = False


@dataclass(frozen=True, slots=True)
class StatusFor:
    user: str


@dataclass(frozen=True, slots=True)
class ShowStatus:
    run: str


@dataclass(frozen=True, slots=True)
class ShowPacket:
    run: str
    version: int | None = None  # None: the packet in force


@dataclass(frozen=True, slots=True)
class ShowLedger:
    run: str
    count: int = 10


# Every command: `bot.intents.USE_CASES` maps each of these types to its one use case.
Command = (
    OpenRun
    | Supersede
    | SignOff
    | EngineIntent
    | Rollback
    | RequestRollback
    | RestoreCohort
    | ReportDone
    | ReportLate
    | ChangeWindow
    | ChangeDelegate
    | OpenHold
    | ReleaseHold
    | WithdrawRelease
    | AdoptPacket
    | RejectPacket
    | Acknowledge
    | CheckGates
    | Advance
    | ExportEvidence
    | EmitManifest
    | StatusFor
    | ShowStatus
    | ShowPacket
    | ShowLedger
)
