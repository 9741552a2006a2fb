"""Parts of message payloads built from domain values, so no domain object reaches a template.

The message kinds and their typed payloads are `packets.messages`; the route into the outbox is
`handlers.outbox.post`. tests/test_render.py renders a sample of every kind.
"""

from __future__ import annotations

from typing import Any

from packets.delta import Change, Delta
from packets.engine.progress import HoldRecord
from packets.packet import Packet


def hold_payload(hold: HoldRecord) -> dict[str, Any]:
    return {
        "id": hold.id,
        "checkpoint": hold.checkpoint,
        "reason": hold.reason,
        "source": str(hold.source),
        "release_by": list(hold.release_by),
        "mode": hold.mode,
    }


def change_rows(changes: tuple[Change, ...]) -> list[dict[str, Any]]:
    """A delta's changes as the rows a DM lists: one row per kind of change."""
    rows: list[dict[str, Any]] = []
    for change in changes:
        base = {"checkpoint": change.checkpoint, "title": change.title}
        if change.moved_by:
            rows.append(
                {
                    **base,
                    "what": "moved",
                    "old": _iso(change.old.start if change.old else None),
                    "new": _iso(change.new.start if change.new else None),
                    "detail": _shift_text(change),
                }
            )
        elif change.end_moved_by:
            # Same start, a new end: the times shown are the ends, or the line would read 21:25 → 21:25.
            rows.append(
                {
                    **base,
                    "what": "end_moved",
                    "old": _iso(change.old.end if change.old else None),
                    "new": _iso(change.new.end if change.new else None),
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
        return signed(start)  # the line says "moved" already
    if start == 0:
        return signed(end)  # the line says "end moved" already
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
