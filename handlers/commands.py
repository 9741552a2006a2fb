"""What a person (or the scheduler) asks for: one frozen value per intent, transport-independent.

Slack listeners, the CLI rehearsal and the scheduler all build these and call the matching use
case. `user` is always the Slack user id of whoever asked; the use case decides whether they may.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True, slots=True)
class OpenRun:
    plan_text: str
    source: str
    channel: str
    user: str


@dataclass(frozen=True, slots=True)
class SignOff:
    run: str
    user: str
    revision: str
    role: str | None = None


@dataclass(frozen=True, slots=True)
class Start:
    run: str
    user: str


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
    until: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ChangeWindow:
    run: str
    user: str
    checkpoint: str
    not_before: datetime
    not_after: datetime


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


@dataclass(frozen=True, slots=True)
class Pause:
    run: str
    user: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Resume:
    run: str
    user: str


@dataclass(frozen=True, slots=True)
class Freeze:
    run: str
    user: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Unfreeze:
    run: str
    user: str


@dataclass(frozen=True, slots=True)
class Rollback:
    run: str
    user: str
    scope: Literal["cohort", "all"]
    reason: str
    # The packet version the Confirm button was rendered for; None when typed in a rehearsal.
    version: int | None = None


@dataclass(frozen=True, slots=True)
class Abort:
    run: str
    user: str
    reason: str


@dataclass(frozen=True, slots=True)
class CheckGates:
    run: str


@dataclass(frozen=True, slots=True)
class Advance:
    """A clock tick with no measurements: soak timers, waiting checkpoints."""

    run: str


@dataclass(frozen=True, slots=True)
class ExportEvidence:
    run: str
    # Who asked in Slack (must have a role in the plan); None for the operator's CLI.
    user: str | None = None


@dataclass(frozen=True, slots=True)
class StatusFor:
    user: str
