"""One step of the stage engine in the making: the progress so far and the effects so far.

`stages.step` makes a `Draft` for the event, the row's function and its helpers change it, and
`step` freezes it into a `Transition`. The draft is the only mutable thing in the engine and it
never outlives one call, so the engine stays a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from packets.authority import Acting, acting_role, who_acts
from packets.engine.effects import Effect, Ledger, Notify, Plain
from packets.engine.events import Event
from packets.engine.progress import CheckpointProgress, RunProgress
from packets.gates import NoDataPolicy
from packets.messages import Message, RunStateLine
from packets.packet import Packet, PlannedCheckpoint
from packets.plan import Checkpoint, Plan


@dataclass
class Draft:
    progress: RunProgress
    event: Event
    plan: Plan
    packet: Packet
    roster: Acting
    effects: list[Effect] = field(default_factory=list)

    # -- what the step works with -------------------------------------------------------------

    @property
    def at(self) -> datetime:
        return self.event.at

    @property
    def order(self) -> tuple[str, ...]:
        """The authoritative packet's timeline order: the order the engine follows."""
        return tuple(c.id for c in self.packet.timeline)

    def no_data(self, gate: str) -> NoDataPolicy:
        return self.plan.gate_policy_of(gate).no_data

    def needed_passes(self, gate: str) -> int:
        return self.plan.gate_policy_of(gate).consecutive_passes

    def spec(self, checkpoint: str) -> Checkpoint:
        return self.plan.checkpoint(checkpoint)

    def planned(self, checkpoint: str) -> PlannedCheckpoint:
        return self.packet.checkpoint(checkpoint)

    def checkpoint(self, checkpoint: str) -> CheckpointProgress:
        return self.progress.checkpoints[checkpoint]

    def in_flight(self) -> str | None:
        return self.progress.in_flight(self.order)

    def flights(self) -> tuple[str, ...]:
        return self.progress.flights(self.order)

    def traffic_flight(self) -> str | None:
        """The first checkpoint in flight that moves traffic: the one a cohort rollback is about."""
        return next((c for c in self.flights() if self.spec(c).traffic is not None), None)

    # -- changing it --------------------------------------------------------------------------

    def update(self, **changes: Any) -> None:
        self.progress = replace(self.progress, **changes)

    def update_checkpoint(self, checkpoint: str, **changes: Any) -> None:
        self.progress = self.progress.with_checkpoint(checkpoint, **changes)

    def emit(self, *effects: Effect) -> None:
        self.effects.extend(effects)

    def ledger(self, kind: str, *, actor: str, payload: Mapping[str, Any]) -> None:
        self.emit(Ledger(kind=kind, actor=actor, payload=dict(payload)))

    def notify(
        self, message: Message, *, roles: Iterable[str], users: Iterable[str] = (), direct: bool = False
    ) -> None:
        role_list = tuple(dict.fromkeys(roles))
        recipients = tuple(dict.fromkeys([*self.acting(role_list), *users]))
        self.emit(Notify(message=message, roles=role_list, users=recipients, direct=direct))

    def tell_state(self, state: str, *, roles: Iterable[str], data: Mapping[str, Plain]) -> None:
        """The room's one line about the run: `state`, with `data` as its reason and details."""
        self.notify(RunStateLine.line(state, dict(data)), roles=roles)

    # -- who acts -----------------------------------------------------------------------------

    def acting(self, roles: Iterable[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.roster.acting_user(role) for role in roles))

    def who_acts(self, roles: Iterable[str], *, joiner: str = " or ") -> str:
        return who_acts(self.roster, roles, joiner=joiner)

    def require(self, user: str, roles: Iterable[str], doing: str) -> str:
        """The first of `roles` that `user` acts for now, or a `Refused` naming who does."""
        return acting_role(self.roster, user, roles, doing)

    def primary_of(self, role: str) -> str | None:
        found = self.plan.roles.get(role)
        return found.primary if found is not None else None
