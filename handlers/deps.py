"""What every use case is handed: the unit of work and the outside world, as protocols."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from handlers.ports import Actuator, Clock, Telemetry
from packets.plan import Plan

if TYPE_CHECKING:
    from store.uow import UnitOfWork


def _ignore(_run: str) -> None:
    return None


@dataclass(frozen=True)
class Deps:
    uow: UnitOfWork
    clock: Clock
    # Telemetry and actuation are chosen per plan (each plan names its provider and actuator).
    telemetry_for: Callable[[Plan], Telemetry]
    actuator_for: Callable[[Plan], Actuator]
    # Called after a commit that changed a run: wakes the outbox dispatcher and re-derives the
    # run's scheduler jobs. Never called inside a transaction.
    on_change: Callable[[str], None] = field(default=_ignore)
    # Traffic shifts a use case queued are sent after its commit. Serve leaves this off: the
    # scheduler's background loop sends them, woken by `on_change`. The tests and the rehearsal
    # turn it on to send them right after each use case (`handlers.shifts.drain`), on the same
    # simulated clock, so what they observe does not depend on a background task's timing.
    drain_shifts: bool = False
