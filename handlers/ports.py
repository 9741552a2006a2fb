"""The outside world as the use cases see it: small protocols, implemented in bot/.

Handlers never import a concrete telemetry provider, actuator or clock; the wiring in bot/ (or a
test, or the rehearsal) hands them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


@dataclass(frozen=True, slots=True)
class Measurement:
    """One instant reading of a gate's query. `value` None means no-data, with `reason` saying why."""

    value: float | None
    reason: str = ""


class Telemetry(Protocol):
    async def measure(self, *, gate: str, query: str, at: datetime) -> Measurement:
        """Evaluate one gate query once. Must not raise: failures are no-data with a reason."""
        ...


@dataclass(frozen=True, slots=True)
class Shift:
    """One traffic change the engine asked for."""

    run: str
    checkpoint: str
    cohort: str
    percent: float
    packet_version: int
    # Same key for a retry of the same shift, so the control plane can drop duplicates.
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class ActuationResult:
    ok: bool
    detail: str = ""


class Actuator(Protocol):
    async def shift(self, shift: Shift) -> ActuationResult:
        """Ask the traffic control plane for the shift. Must not raise: errors are ok=False."""
        ...
