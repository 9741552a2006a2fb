"""Command packet versions: the run's timeline as one numbered, hashed, immutable value.

A packet is `proposed` when the resequencer produces it, `authoritative` once the release
authority adopts it (version 1 is authoritative from the start), and `superseded` when a later
version is adopted. Its hash covers everything but its state, so adopting a packet never changes
its hash, and the same inputs always give the same hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from packets.plan import canonical_json


class PacketState(StrEnum):
    PROPOSED = "proposed"
    AUTHORITATIVE = "authoritative"
    SUPERSEDED = "superseded"
    REJECTED = "rejected"


class HoldSource(StrEnum):
    PLAN = "plan"  # a hold checkpoint or a protected checkpoint
    CONFLICT = "conflict"  # a protected checkpoint that no longer fits its window
    GATE = "gate"  # a failed gate whose action is hold / rollback_cohort
    ACTUATION = "actuation"  # the traffic control plane refused a shift
    MANUAL = "manual"  # /cutover hold
    BUNDLE = "bundle"  # the plan's bundle: an unresolved waiver, a missing rollback pointer


@dataclass(frozen=True, slots=True)
class PlannedCheckpoint:
    """One line of the timeline, with its owner resolved to the acting user at packet time."""

    id: str
    title: str
    owner_role: str
    owner_user: str
    observer_roles: tuple[str, ...]
    observer_users: tuple[str, ...]
    start: datetime
    end: datetime
    protected: bool
    after: tuple[str, ...] = ()
    # The checkpoint's plan hold, or a conflict hold: it will not run until released.
    held: bool = False
    # Why this checkpoint cannot be scheduled validly (e.g. past its not_after), or None.
    conflict: str | None = None
    # Held checkpoints this one waits on, directly or through its dependencies.
    waits_on: tuple[str, ...] = ()
    # Progress facts folded in: "done", "late", "active", or "" when only planned.
    status: str = ""
    # The checkpoint's window in force when the packet was built (a window change replaces the
    # plan's): the engine honours the authoritative packet's boundaries, not the plan's.
    not_before: datetime | None = None
    not_after: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        # Written out by hand: dataclasses.asdict deep-copies every field and made hashing a
        # 200-checkpoint packet cost milliseconds.
        return {
            "id": self.id,
            "title": self.title,
            "owner_role": self.owner_role,
            "owner_user": self.owner_user,
            "observer_roles": list(self.observer_roles),
            "observer_users": list(self.observer_users),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "protected": self.protected,
            "after": list(self.after),
            "held": self.held,
            "conflict": self.conflict,
            "waits_on": list(self.waits_on),
            "status": self.status,
            # Only when set, so a packet of checkpoints without windows keeps its document.
            **({"not_before": self.not_before.isoformat()} if self.not_before is not None else {}),
            **({"not_after": self.not_after.isoformat()} if self.not_after is not None else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlannedCheckpoint:
        bounds = {
            key: datetime.fromisoformat(data[key]) for key in ("not_before", "not_after") if data.get(key)
        }
        return cls(
            **{
                **data,
                **bounds,
                "start": datetime.fromisoformat(data["start"]),
                "end": datetime.fromisoformat(data["end"]),
                "observer_roles": tuple(data["observer_roles"]),
                "observer_users": tuple(data["observer_users"]),
                "after": tuple(data.get("after", ())),
                "waits_on": tuple(data.get("waits_on", ())),
            }
        )


@dataclass(frozen=True, slots=True)
class PacketHold:
    """An entry of the packet's hold register: a hold the plan or a conflict will put on a checkpoint.

    It has no id of its own: only a hold the engine opens has one (`CHECKPOINT/SOURCE/N`,
    `packets.engine.holds.open_hold`), and an entry is matched to the holds opened for it by its
    checkpoint and source.
    """

    checkpoint: str
    reason: str
    source: HoldSource
    release_by: tuple[str, ...]
    mode: str = "any"

    def as_json(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "reason": self.reason,
            "source": str(self.source),
            "release_by": list(self.release_by),
            "mode": self.mode,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PacketHold:
        # Packets stored before holds had one identity carry an "id" too: not read.
        return cls(
            checkpoint=data["checkpoint"],
            reason=data["reason"],
            source=HoldSource(data["source"]),
            release_by=tuple(data["release_by"]),
            mode=data.get("mode", "any"),
        )


@dataclass(frozen=True, slots=True)
class Packet:
    version: int
    plan_revision: str
    timeline: tuple[PlannedCheckpoint, ...]
    holds: tuple[PacketHold, ...]
    reason: str
    supersedes: int | None = None
    state: PacketState = PacketState.PROPOSED
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    # Memo of the hash: the packet is immutable, and the hash is asked for many times per use case.
    _memo: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update({c.id: i for i, c in enumerate(self.timeline)})

    @property
    def conflicts(self) -> tuple[PlannedCheckpoint, ...]:
        return tuple(c for c in self.timeline if c.conflict)

    def checkpoint(self, checkpoint_id: str) -> PlannedCheckpoint:
        return self.timeline[self._index[checkpoint_id]]

    def position(self, checkpoint_id: str) -> int:
        return self._index[checkpoint_id]

    def has(self, checkpoint_id: str) -> bool:
        return checkpoint_id in self._index

    def content(self) -> dict[str, Any]:
        """Everything the hash covers: all but the state."""
        return {
            "version": self.version,
            "plan_revision": self.plan_revision,
            "supersedes": self.supersedes,
            "reason": self.reason,
            "timeline": [c.as_json() for c in self.timeline],
            "holds": [h.as_json() for h in self.holds],
        }

    @property
    def hash(self) -> str:
        if "hash" not in self._memo:
            self._memo["hash"] = hashlib.sha256(canonical_json(self.content()).encode()).hexdigest()
        return self._memo["hash"]

    def as_json(self) -> dict[str, Any]:
        return {**self.content(), "state": str(self.state), "hash": self.hash}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Packet:
        return cls(
            version=data["version"],
            plan_revision=data["plan_revision"],
            supersedes=data.get("supersedes"),
            reason=data["reason"],
            timeline=tuple(PlannedCheckpoint.from_json(c) for c in data["timeline"]),
            holds=tuple(PacketHold.from_json(h) for h in data["holds"]),
            state=PacketState(data.get("state", "proposed")),
        )

    def with_state(self, state: PacketState) -> Packet:
        return replace(self, state=state, _index={}, _memo=dict(self._memo))
