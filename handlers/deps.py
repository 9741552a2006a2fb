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
