"""Parts of message payloads built from domain values, so no domain object reaches a template.

The message kinds and their typed payloads are `packets.messages`; the route into the outbox is
`handlers.outbox.post`. tests/test_render.py renders a sample of every kind.
"""

from __future__ import annotations

from typing import Any

from packets.delta import Change, Delta
from packets.engine import effects as fx
from packets.engine.progress import HoldRecord
from packets.messages import RunStateLine
from packets.packet import Packet

# Engine notifications that the room sees as one line about the run's state.
_STATE_LINES: dict[str, str] = {
    fx.NotifyKind.RUN_READY: "ready",
    fx.NotifyKind.RUN_STARTED: "started",
    fx.NotifyKind.CHECKPOINT_STARTED: "checkpoint started",
    fx.NotifyKind.CHECKPOINT_COMPLETED: "checkpoint done",
    fx.NotifyKind.PAUSED: "paused",
    fx.NotifyKind.RESUMED: "resumed",
    fx.NotifyKind.FROZEN: "frozen",
    fx.NotifyKind.UNFROZEN: "unfrozen",
    fx.NotifyKind.COHORT_ROLLED_BACK: "cohort rolled back",
    fx.NotifyKind.ROLLBACK_STARTED: "rolling back",
    fx.NotifyKind.ROLLED_BACK: "rolled back",
    fx.NotifyKind.ACTUATION_FAILED: "traffic shift refused by the control plane",
    fx.NotifyKind.PACKET_FOLLOWED: "following the adopted packet",
    fx.NotifyKind.HYPERCARE_STARTED: "hypercare",
    fx.NotifyKind.COMPLETED: "completed",
    fx.NotifyKind.ABORTED: "aborted",
}


def hold_payload(hold: HoldRecord) -> dict[str, Any]:
    return {
        "id": hold.id,
        "checkpoint": hold.checkpoint,
        "reason": hold.reason,
        "source": str(hold.source),
        "release_by": list(hold.release_by),
        "mode": hold.mode,
    }


def state_line(notify: fx.Notify) -> RunStateLine | None:
    """The run_state message for an engine notification, or None when it is not a state line."""
    label = _STATE_LINES.get(notify.kind)
    return RunStateLine.line(label, notify.data) if label is not None else None


def change_rows(changes: tuple[Change, ...]) -> list[dict[str, Any]]:
    """A delta's changes as the rows a DM lists: one row per kind of change."""
    rows: list[dict[str, Any]] = []
    for change in changes:
        base = {"checkpoint": change.checkpoint, "title": change.title}
        if change.moved_by or change.end_moved_by:
            rows.append(
                {
                    **base,
                    "what": "moved",
                    "old": _iso(change.old.start if change.old else None),
                    "new": _iso(change.new.start if change.new else None),
                    "detail": _shift_text(change),
                }
            )
        if change.owner_changed:
            old, new = change.owner_changed
            rows.append({**base, "what": "owner_changed", "old": old, "new": new})
        if change.reordered:
            rows.append({**base, "what": "reordered"})
        if change.hold_added:
            rows.append({**base, "what": "hold_added"})
        if change.hold_released:
            rows.append({**base, "what": "hold_released"})
        if change.conflict_added:
            rows.append({**base, "what": "conflict", "detail": change.conflict_added})
        if change.conflict_cleared:
            rows.append({**base, "what": "conflict", "detail": "conflict cleared"})
    return rows


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _shift_text(change: Change) -> str:
    def signed(minutes: int) -> str:
        return f"{'+' if minutes >= 0 else ''}{minutes} min"

    start = int(change.moved_by.total_seconds() // 60)
    end = int(change.end_moved_by.total_seconds() // 60)
    if start == end:
        return f"moved {signed(start)}"
    if start == 0:
        return f"now ends {signed(end)}"
    return f"starts {signed(start)}, ends {signed(end)}"


def delta_counts(delta: Delta) -> dict[str, int]:
    material = delta.material_changes
    return {
        "moved": sum(1 for c in material if c.moved_by or c.end_moved_by),
        "reordered": sum(1 for c in material if c.reordered),
        "owner_changed": sum(1 for c in material if c.owner_changed),
        "held": sum(1 for c in material if c.hold_added),
        "released": sum(1 for c in material if c.hold_released),
        "conflict": sum(1 for c in material if c.conflict_added),
    }


def packet_payload(packet: Packet) -> dict[str, Any]:
    return packet.as_json()
