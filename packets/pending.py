"""Pending changes: what people reported that no adopted packet carries yet, kept apart.

A late report, a window change and a delegate switch each become one `PendingChange` with its own
number (`#3`), who reported it and when. A proposal is built from the adopted facts and acting
users with every pending change applied in order (`apply_all`), and remembers which changes it
carries (`proposed_in`). Adopting that version makes exactly those changes true; rejecting it
takes the changes named (default: the newest), and the others stay pending for the next proposal.
A delegate switch is one of them: until the packet carrying it is adopted, the previous acting
user still acts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from packets.plan import CheckpointWindow
from packets.timeline import Facts


class ChangeKind(StrEnum):
    LATE = "late"
    WINDOW = "window"
    DELEGATE = "delegate"


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingChange:
    seq: int
    kind: ChangeKind
    by: str
    at: datetime
    checkpoint: str | None = None
    until: datetime | None = None  # late
    window: CheckpointWindow | None = None  # window
    role: str | None = None  # delegate
    to_user: str | None = None
    from_user: str | None = None
    # The newest proposed version carrying this change; None until one is proposed.
    proposed_in: int | None = None

    def apply(self, facts: Facts, acting: Mapping[str, str]) -> tuple[Facts, dict[str, str]]:
        after = dict(acting)
        if self.kind is ChangeKind.LATE and self.checkpoint is not None and self.until is not None:
            return facts.report_late(self.checkpoint, self.until), after
        if self.kind is ChangeKind.WINDOW and self.checkpoint is not None and self.window is not None:
            return facts.move_window(self.checkpoint, self.window), after
        if self.kind is ChangeKind.DELEGATE and self.role is not None and self.to_user is not None:
            after[self.role] = self.to_user
        return facts, after

    def describe(self, *, clock: Any) -> str:
        """One line for people: `#3 canary late until 22:10, reported by <@U0ENG1> at 21:40`.

        `clock(datetime) -> "HH:MM"` renders times in the plan window's offset."""
        if self.kind is ChangeKind.LATE:
            what = f"{self.checkpoint} late until {clock(self.until)}"
        elif self.kind is ChangeKind.WINDOW:
            assert self.window is not None
            what = f"{self.checkpoint} window {clock(self.window.not_before)}-{clock(self.window.not_after)}"
        else:
            what = f"<@{self.to_user}> to act for {self.role} (instead of <@{self.from_user}>)"
        return f"#{self.seq} {what}, reported by <@{self.by}> at {clock(self.at)}"

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": str(self.kind),
            "by": self.by,
            "at": self.at.isoformat(),
            "checkpoint": self.checkpoint,
            "until": self.until.isoformat() if self.until is not None else None,
            "window": self.window.model_dump(mode="json") if self.window is not None else None,
            "role": self.role,
            "to_user": self.to_user,
            "from_user": self.from_user,
            "proposed_in": self.proposed_in,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PendingChange:
        return cls(
            seq=int(data["seq"]),
            kind=ChangeKind(data["kind"]),
            by=data["by"],
            at=datetime.fromisoformat(data["at"]),
            checkpoint=data.get("checkpoint"),
            until=datetime.fromisoformat(data["until"]) if data.get("until") else None,
            window=CheckpointWindow.model_validate(data["window"]) if data.get("window") else None,
            role=data.get("role"),
            to_user=data.get("to_user"),
            from_user=data.get("from_user"),
            proposed_in=data.get("proposed_in"),
        )


def apply_all(
    facts: Facts, acting: Mapping[str, str], changes: Iterable[PendingChange]
) -> tuple[Facts, dict[str, str]]:
    """The facts and acting users a proposal builds on: the adopted ones, each change applied in order."""
    current, who = facts, dict(acting)
    for change in sorted(changes, key=lambda c: c.seq):
        current, who = change.apply(current, who)
    return current, who


def carried_by(changes: Iterable[PendingChange], version: int) -> tuple[PendingChange, ...]:
    return tuple(c for c in changes if c.proposed_in == version)


def proposed(changes: Iterable[PendingChange], version: int) -> tuple[PendingChange, ...]:
    """Every change, now carried by the newly proposed `version`."""
    return tuple(replace(c, proposed_in=version) for c in changes)
