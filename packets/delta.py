"""What changed between two packet versions, and whom each change concerns.

A change is *material* when a checkpoint's start or end moved by at least the plan's
`material_shift` (either direction), or its owner, order, hold or conflict changed. Only material
changes are told to anyone, and only to the checkpoint's *affected principals*: the acting users
of its owner role in both versions and of its observer roles in both versions. A person whose
checkpoint moved by a minute is told nothing; the channel still has the whole packet.

Choices written down here:

- `Delta.changes` lists only checkpoints where something differs, in the new timeline's order
  (checkpoints that vanished follow, in the old order). Nothing differing means no `Change`.
- *Reordered* means the checkpoint itself moved in time and its rank among the checkpoints both
  versions share changed. Checkpoints that were merely overtaken did not move and are not
  reordered: the one that overtook them carries the change, so one late report does not notify
  the owner of every checkpoint it passes.
- A conflict whose text changed (the overrun grew, say) counts as a conflict added again: the
  release authority must see the new number.
- Holds are compared through the hold registers (by hold id) and the `held` flags together.
- A checkpoint present in only one version is a material change (added or removed); its
  principals come from the version that has it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from packets.packet import Packet, PacketHold, PlannedCheckpoint

_NO_SHIFT = timedelta(0)


@dataclass(frozen=True, slots=True)
class Change:
    """How one checkpoint differs between two packet versions."""

    checkpoint: str
    title: str
    moved_by: timedelta  # start shift: positive is later
    end_moved_by: timedelta
    reordered: bool
    owner_changed: tuple[str, str] | None  # (old user, new user)
    hold_added: bool
    hold_released: bool
    conflict_added: str | None  # the new conflict text
    conflict_cleared: bool
    material: bool
    principals: tuple[str, ...]  # sorted, each once
    shifted: bool = False  # start or end moved by at least material_shift
    added: bool = False
    removed: bool = False
    old: PlannedCheckpoint | None = None  # for rendering "was 21:40, now 22:20"
    new: PlannedCheckpoint | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    old_version: int
    new_version: int
    changes: tuple[Change, ...]

    @property
    def material_changes(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.material)

    def notices(self) -> dict[str, tuple[Change, ...]]:
        """One notice per affected principal: only the material changes that concern them.

        Users in sorted order, changes in timeline order; principals of immaterial changes are
        told nothing.
        """
        by_user: dict[str, list[Change]] = {}
        for change in self.material_changes:
            for user in change.principals:
                by_user.setdefault(user, []).append(change)
        return {user: tuple(by_user[user]) for user in sorted(by_user)}

    def summary(self) -> str:
        """A line for people: "4 checkpoints moved, 1 held"; counts material changes only."""
        material = self.material_changes
        if not material:
            return "no material changes"
        counts = [
            (sum(1 for c in material if c.added), "added"),
            (sum(1 for c in material if c.removed), "removed"),
            (sum(1 for c in material if c.shifted), "moved"),
            (sum(1 for c in material if c.reordered), "reordered"),
            (sum(1 for c in material if c.owner_changed), "with a new owner"),
            (sum(1 for c in material if c.hold_added), "held"),
            (sum(1 for c in material if c.hold_released), "released"),
            (sum(1 for c in material if c.conflict_added), "in conflict"),
            (sum(1 for c in material if c.conflict_cleared), "out of conflict"),
        ]
        parts = [f"{n} {what}" for n, what in counts if n]
        if not parts:  # every material reason is counted above; this only guards a future one
            return f"{len(material)} checkpoint{'' if len(material) == 1 else 's'} changed"
        first_n, first_what = parts[0].split(" ", 1)
        noun = "checkpoint" if first_n == "1" else "checkpoints"
        parts[0] = f"{first_n} {noun} {first_what}"
        return ", ".join(parts)


def diff(old: Packet, new: Packet, *, material_shift: timedelta) -> Delta:
    """Every checkpoint that differs between `old` and `new`, material or not, in timeline order."""
    common = [c.id for c in new.timeline if old.has(c.id)]
    old_rank = {cid: r for r, cid in enumerate(sorted(common, key=old.position))}
    new_rank = {cid: r for r, cid in enumerate(common)}
    old_holds = _holds_by_checkpoint(old.holds)
    new_holds = _holds_by_checkpoint(new.holds)

    changes: list[Change] = []
    for line in new.timeline:
        if old.has(line.id):
            before = old.checkpoint(line.id)
            rank_changed = old_rank[line.id] != new_rank[line.id]
            change = _compare(before, line, old_holds, new_holds, rank_changed, material_shift)
        else:
            change = _only_in_one(line, added=True)
        if change is not None:
            changes.append(change)
    changes.extend(_only_in_one(line, added=False) for line in old.timeline if not new.has(line.id))
    return Delta(old_version=old.version, new_version=new.version, changes=tuple(changes))


def _compare(
    old: PlannedCheckpoint,
    new: PlannedCheckpoint,
    old_holds: Mapping[str, frozenset[str]],
    new_holds: Mapping[str, frozenset[str]],
    rank_changed: bool,
    material_shift: timedelta,
) -> Change | None:
    moved_by = new.start - old.start
    end_moved_by = new.end - old.end
    reordered = rank_changed and moved_by != _NO_SHIFT
    owner_changed = (old.owner_user, new.owner_user) if old.owner_user != new.owner_user else None
    was = old_holds.get(old.id, frozenset())
    now = new_holds.get(new.id, frozenset())
    hold_added = bool(now - was) or (new.held and not old.held)
    hold_released = bool(was - now) or (old.held and not new.held)
    conflict_added = new.conflict if new.conflict and new.conflict != old.conflict else None
    conflict_cleared = bool(old.conflict) and not new.conflict
    observers_changed = old.observer_users != new.observer_users
    if not (
        moved_by
        or end_moved_by
        or reordered
        or owner_changed
        or hold_added
        or hold_released
        or conflict_added
        or conflict_cleared
        or observers_changed
    ):
        return None
    shifted = _shifted(moved_by, material_shift) or _shifted(end_moved_by, material_shift)
    material = (
        shifted
        or reordered
        or owner_changed is not None
        or hold_added
        or hold_released
        or conflict_added is not None
        or conflict_cleared
    )
    return Change(
        checkpoint=new.id,
        title=new.title,
        moved_by=moved_by,
        end_moved_by=end_moved_by,
        reordered=reordered,
        owner_changed=owner_changed,
        hold_added=hold_added,
        hold_released=hold_released,
        conflict_added=conflict_added,
        conflict_cleared=conflict_cleared,
        material=material,
        principals=_principals(old, new),
        shifted=shifted,
        old=old,
        new=new,
    )


def _only_in_one(line: PlannedCheckpoint, *, added: bool) -> Change:
    return Change(
        checkpoint=line.id,
        title=line.title,
        moved_by=_NO_SHIFT,
        end_moved_by=_NO_SHIFT,
        reordered=False,
        owner_changed=None,
        hold_added=added and line.held,
        hold_released=not added and line.held,
        conflict_added=line.conflict if added else None,
        conflict_cleared=not added and bool(line.conflict),
        material=True,
        principals=_principals(line),
        added=added,
        removed=not added,
        old=None if added else line,
        new=line if added else None,
    )


def _principals(*versions: PlannedCheckpoint) -> tuple[str, ...]:
    users = {v.owner_user for v in versions}
    for v in versions:
        users.update(v.observer_users)
    return tuple(sorted(users))


def _holds_by_checkpoint(holds: tuple[PacketHold, ...]) -> dict[str, frozenset[str]]:
    """The sources of the holds planned on each checkpoint (a register entry's identity)."""
    sources: dict[str, set[str]] = {}
    for hold in holds:
        sources.setdefault(hold.checkpoint, set()).add(str(hold.source))
    return {checkpoint: frozenset(found) for checkpoint, found in sources.items()}


def _shifted(shift: timedelta, material_shift: timedelta) -> bool:
    # A zero shift is never material, even when the plan sets material_shift to 0.
    return shift != _NO_SHIFT and abs(shift) >= material_shift
