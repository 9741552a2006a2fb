"""What the stage engine asks the outside world to do, as values.

The engine never shifts traffic, posts a message or writes the ledger itself: it returns these,
and the use case carries them out in the same transaction that saves the new `RunProgress`
(ledger and outbox rows) or right after it (traffic, gate-check scheduling).

Every payload is plain JSON (str, int, float, bool, None, lists, dicts) and every free text in
it has been through `packets.redact` already.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from packets.engine.progress import HoldRecord
from packets.messages import Message, MessageKind

Plain = str | int | float | bool | None


class LedgerKind(StrEnum):
    SIGNOFF = "signoff"
    RUN_READY = "run_ready"
    RUN_STARTED = "run_started"
    CHECKPOINT_STARTED = "checkpoint_started"
    CHECKPOINT_COMPLETED = "checkpoint_completed"
    TRAFFIC_SHIFTED = "traffic_shifted"
    TRAFFIC_CONFIRMED = "traffic_confirmed"
    ACTUATION_FAILED = "actuation_failed"
    ACTUATION_REPORT_IGNORED = "actuation_report_ignored"
    HOLD_OPENED = "hold_opened"
    HOLD_RELEASE_RECORDED = "hold_release_recorded"
    HOLD_RELEASE_WITHDRAWN = "hold_release_withdrawn"
    HOLD_RELEASED = "hold_released"
    HOLD_WITHDRAWN = "hold_withdrawn"
    GATE_FAILED = "gate_failed"
    GATE_RESULTS_IGNORED = "gate_results_ignored"
    RUN_PAUSED = "run_paused"
    RUN_RESUMED = "run_resumed"
    RUN_FROZEN = "run_frozen"
    RUN_UNFROZEN = "run_unfrozen"
    ROLLBACK_COHORT = "rollback_cohort"
    GLOBAL_ROLLBACK = "global_rollback"
    ROLLBACK_RETRIED = "rollback_retried"
    PACKET_FOLLOWED = "packet_followed"
    HYPERCARE_STARTED = "hypercare_started"
    HYPERCARE_EXTENDED = "hypercare_extended"
    TRAFFIC_RESTORED = "traffic_restored"
    RESTORE_WITHHELD = "restore_withheld"
    HYPERCARE_ENDED = "hypercare_ended"
    RUN_COMPLETED = "run_completed"
    RUN_ROLLED_BACK = "run_rolled_back"
    RUN_ABORTED = "run_aborted"
    RUN_SUPERSEDED = "run_superseded"


@dataclass(frozen=True, slots=True, kw_only=True)
class ShiftTraffic:
    """Ask the control plane to put `cohort` at `percent`; confirm with ActuationSucceeded/Failed."""

    checkpoint: str | None
    cohort: str
    percent: float
    previous_percent: float
    packet_version: int
    cause: str  # advance | rollback_cohort | global_rollback
    # Idempotency key: a retry of the same command carries the same key.
    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenHold:
    hold: HoldRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseHold:
    hold_id: str
    # Users who released it (with `roles` in the same order), or ("engine",) when withdrawn.
    by: tuple[str, ...]
    roles: tuple[str, ...]
    withdrawn: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Notify:
    """A message for the room (`packets.messages`), concerning the acting users of `roles` and the
    `users` named directly. With `direct`, the handlers DM each of `users` as well: for what the
    room alone is not enough (a checkpoint running past its window; hyper-care alerts are DM'd
    by kind)."""

    message: Message
    roles: tuple[str, ...]
    users: tuple[str, ...]
    direct: bool = False

    @property
    def kind(self) -> MessageKind:
        return self.message.kind


@dataclass(frozen=True, slots=True, kw_only=True)
class Ledger:
    """One ledger entry to append. `actor` is a user id, `engine` or `gate:<name>`."""

    kind: str
    actor: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleGateChecks:
    checkpoint: str
    gates: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class StopGateChecks:
    """Stop the checks of one checkpoint, or of the whole run when `checkpoint` is None."""

    checkpoint: str | None


Effect = ShiftTraffic | OpenHold | CloseHold | Notify | Ledger | ScheduleGateChecks | StopGateChecks
