"""Scheduling: the plan plus what has happened since (`Facts`) becomes a command packet.

`build_packet` is the resequencer. It is a pure function of its inputs, so the same plan, facts
and acting map always give the same packet, byte for byte (same `Packet.hash`).

How a checkpoint is placed:

- Checkpoints are visited in topological order of `after`, ties broken by plan list order
  (Kahn's algorithm over a heap of plan indexes: O((N + E) log N), no scans of the whole list;
  a plan whose dependencies all point up the list is already in that order and skips the heap).
- start = the latest of: the plan window's start, the checkpoint's `not_before`, the end of
  every dependency, and the end of the traffic checkpoint placed before it on the same cohort
  (shifts of one cohort never overlap). A `started` fact replaces that computed start: it
  happened. Built during a run (`now` given), a checkpoint that has not started starts no
  earlier than now, and one that started but is not done ends no earlier than now.
- end = start + duration + soak. A `late` fact ("will finish at T") makes end = max(T, that):
  a late report only ever pushes a checkpoint later; finishing early is reported as `done`.
- A `done` checkpoint ends at its done time (and starts at its started time, else its computed
  start, never after it ended). Done checkpoints hold nothing and wait on nothing.
- `Facts.windows` replaces a checkpoint's plan window (narrowed or moved by the war room).
- `status` is "done", "late", "active" (started) or "" (only planned), in that precedence.
- Every time in the packet is in the plan window's UTC offset, whatever offset a fact came in.

What happens when a checkpoint cannot finish by its `not_after`:

- protected: it is not moved past its boundary. It gets a `conflict` saying by how much and why,
  `held=True`, and a CONFLICT hold (released under the checkpoint's own `hold:` rule, else by
  `authority.adopt_packets`) in the register. Its
  planned times show the slot it was meant to take, clamped inside its window (end = not_after),
  while its dependents are scheduled after its real earliest end, so their `after` still holds
  whichever way the release authority decides. They name it in `waits_on`. A checkpoint that
  already started keeps its real start and is held all the same: the hold stops its dependents
  until the overrun is accepted.
- not protected: it is moved, with a conflict note and no hold.
- waived (`Facts.waived`, a conflict the release authority accepted): scheduled at the computed
  time with no conflict and no conflict hold. Accepting a CONFLICT hold is how it is released.

Holds from the plan: a hold checkpoint (`hold:`) and a protected checkpoint are held with a PLAN
hold until released (`Facts.released`) or started. A protected checkpoint without a `hold:` is
released by `authority.adopt_packets`. Hold ids are stable across versions: `plan:<checkpoint>`
and `conflict:<checkpoint>`. `waits_on` names every held checkpoint upstream, directly or
through dependencies, in plan order; a started or done checkpoint waits on nothing and passes
on nothing from upstream.

The timeline lists checkpoints by real start time, ties by topological rank, so it is always a
topological order, and a checkpoint that overtakes another shows up as reordered in a delta.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from packets.authority import Roster
from packets.durations import format_duration
from packets.packet import HoldSource, Packet, PacketHold, PacketState, PlannedCheckpoint
from packets.plan import Checkpoint, CheckpointWindow, Plan

_ZERO = timedelta(0)


class TimelineError(ValueError):
    """The plan or the facts cannot be scheduled at all: a cycle, or an unknown checkpoint."""


@dataclass(frozen=True, slots=True)
class Facts:
    """What has changed since the plan was approved, keyed by checkpoint id. Treat as immutable."""

    late: Mapping[str, datetime] = field(default_factory=dict)  # will finish at this time
    done: Mapping[str, datetime] = field(default_factory=dict)  # actually finished
    started: Mapping[str, datetime] = field(default_factory=dict)
    windows: Mapping[str, CheckpointWindow] = field(default_factory=dict)  # override plan windows
    waived: frozenset[str] = frozenset()  # conflicts the release authority accepted
    released: frozenset[str] = frozenset()  # plan holds already released

    def report_late(self, checkpoint: str, until: datetime) -> Facts:
        return replace(self, late={**self.late, checkpoint: until})

    def mark_started(self, checkpoint: str, at: datetime) -> Facts:
        return replace(self, started={**self.started, checkpoint: at})

    def mark_done(self, checkpoint: str, at: datetime) -> Facts:
        return replace(self, done={**self.done, checkpoint: at})

    def move_window(self, checkpoint: str, window: CheckpointWindow) -> Facts:
        return replace(self, windows={**self.windows, checkpoint: window})

    def waive(self, checkpoint: str) -> Facts:
        return replace(self, waived=self.waived | {checkpoint})

    def release(self, checkpoint: str) -> Facts:
        return replace(self, released=self.released | {checkpoint})

    def checkpoints(self) -> frozenset[str]:
        """Every checkpoint id any fact mentions."""
        return frozenset([*self.late, *self.done, *self.started, *self.windows, *self.waived, *self.released])

    def as_json(self) -> dict[str, Any]:
        """Plain data with sorted keys, for storage; `from_json` reads it back."""

        def times(values: Mapping[str, datetime]) -> dict[str, str]:
            return {k: values[k].isoformat() for k in sorted(values)}

        return {
            "late": times(self.late),
            "done": times(self.done),
            "started": times(self.started),
            "windows": {k: self.windows[k].model_dump(mode="json") for k in sorted(self.windows)},
            "waived": sorted(self.waived),
            "released": sorted(self.released),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Facts:
        def times(values: Mapping[str, str]) -> dict[str, datetime]:
            return {k: datetime.fromisoformat(v) for k, v in values.items()}

        return cls(
            late=times(data.get("late", {})),
            done=times(data.get("done", {})),
            started=times(data.get("started", {})),
            windows={k: CheckpointWindow.model_validate(v) for k, v in data.get("windows", {}).items()},
            waived=frozenset(data.get("waived", ())),
            released=frozenset(data.get("released", ())),
        )


def build_packet(
    plan: Plan,
    facts: Facts,
    *,
    version: int,
    supersedes: int | None,
    reason: str,
    acting: Mapping[str, str],
    state: PacketState = PacketState.PROPOSED,
    plan_revision: str | None = None,
    now: datetime | None = None,
) -> Packet:
    """Schedule the plan under `facts` into packet `version`; see the module docstring.

    `plan_revision`: the run's plan revision when the caller has it (a run is of one revision),
    which saves hashing the whole plan again (about 10 ms per 2,000 checkpoints).
    `now`: when the packet is built during a run: nothing that has not started is planned
    before it, and nothing that has started but is not done is planned to end before it.
    """
    checkpoints = plan.checkpoints
    index = _index_checkpoints(checkpoints)
    _check_facts(facts, index)
    deps = [_dependency_indexes(cp, index) for cp in checkpoints]
    order = _topological_order(deps, [cp.id for cp in checkpoints])
    acting_by_role = Roster(plan.roles, acting).acting_map()

    scheduler = _Scheduler(plan, facts, deps, acting_by_role, now=now)
    # One pass in topological order (nearly plan order) makes each finished line at once: big
    # plans are read front to back a single time, and nothing but the results is kept around.
    lines = [scheduler.line(i) for i in order]
    # By real start; the sort is stable and `lines` is in topological order, so ties keep their
    # rank and the timeline stays a topological order (see the module docstring).
    lines.sort(key=itemgetter(0))
    timeline = tuple(line for _, line, _ in lines)
    holds = tuple(hold for _, _, line_holds in lines for hold in line_holds)
    return Packet(
        version=version,
        plan_revision=plan.revision if plan_revision is None else plan_revision,
        timeline=timeline,
        holds=holds,
        reason=reason,
        supersedes=supersedes,
        state=state,
    )


@dataclass(slots=True)
class _Slot:
    """Where one checkpoint landed, before owners are resolved. Times are in the plan's offset."""

    index: int  # plan list position
    real_start: datetime
    real_end: datetime  # what dependents wait for, even when the shown slot is clamped
    start: datetime  # shown in the packet
    end: datetime
    status: str
    plan_hold: bool = False
    conflict: str | None = None
    conflict_hold: bool = False
    upstream_holds: int = 0  # bitmask of held checkpoints upstream (bit k: k-th held one found)

    @property
    def held(self) -> bool:
        return self.plan_hold or self.conflict_hold


class _Scheduler:
    """Places checkpoints one at a time in topological order; remembers what dependents need."""

    def __init__(
        self,
        plan: Plan,
        facts: Facts,
        deps: list[tuple[int, ...]],
        acting_by_role: Mapping[str, str],
        *,
        now: datetime | None = None,
    ) -> None:
        tz = plan.window.start.tzinfo
        if tz is None:  # the plan model refuses naive times; never fall back to the host's zone
            raise TimelineError("the plan window has no UTC offset")
        self.tz = tz
        self.plan = plan
        self.deps = deps
        self.acting_by_role = acting_by_role
        # Every time is moved to the plan window's offset once, on the way in: arithmetic keeps
        # it, comparisons stay cheap, and equal instants always serialise alike in the packet.
        self.window_start = plan.window.start
        self.late = {k: self.local(v) for k, v in facts.late.items()}
        self.done = {k: self.local(v) for k, v in facts.done.items()}
        self.started = {k: self.local(v) for k, v in facts.started.items()}
        self.windows = facts.windows
        self.waived = facts.waived
        self.released = facts.released
        n = len(plan.checkpoints)
        # What dependents need from each placed checkpoint, by plan index.
        self.real_end: list[datetime] = [self.window_start] * n
        self.upstream_holds = [0] * n
        self.held_bit = [0] * n
        self.held_order: list[int] = []  # plan indexes of held checkpoints, by bit number
        self._decoded: dict[int, tuple[str, ...]] = {0: ()}
        self.now = None if now is None else self.local(now)
        # Traffic checkpoints on one cohort never overlap: each waits for the one placed before
        # it on that cohort (topological order, so this never makes a cycle).
        self.cohort_last: dict[str, int] = {}

    def local(self, value: datetime) -> datetime:
        return value if value.tzinfo is self.tz else value.astimezone(self.tz)

    def line(self, i: int) -> tuple[datetime, PlannedCheckpoint, tuple[PacketHold, ...]]:
        """Place checkpoint `i` (its dependencies are placed): its real start, line and holds."""
        cp = self.plan.checkpoints[i]
        slot = self.place(i)
        self.real_end[i] = slot.real_end
        self.upstream_holds[i] = slot.upstream_holds
        if slot.held:
            self.held_bit[i] = 1 << len(self.held_order)
            self.held_order.append(i)
        if cp.traffic is not None:
            self.cohort_last[cp.traffic.cohort] = i
        window = self.windows.get(cp.id, cp.window)
        line = _planned(cp, slot, self.acting_by_role, self.waits_on(slot), window, self.local)
        return slot.real_start, line, _holds(self.plan, cp, slot)

    def place(self, i: int) -> _Slot:
        cp = self.plan.checkpoints[i]
        window = self.windows.get(cp.id, cp.window)
        not_before = not_after = None
        if window is not None:
            not_before = window.not_before and self.local(window.not_before)
            not_after = window.not_after and self.local(window.not_after)
        # The engine completes a hold checkpoint without gates when its hold is released (the
        # hold is the checkpoint): it takes no time on the timeline, whatever duration it names.
        length = _ZERO if cp.hold is not None and not cp.gates else cp.duration + cp.soak

        lower = self.window_start
        if not_before is not None and not_before > lower:
            lower = not_before
        earliest, bound_by = lower, -1  # bound_by: the dependency that sets the start, if any
        upstream = 0
        for j in self.deps[i]:  # topological order placed every dependency already
            upstream |= self.upstream_holds[j] | self.held_bit[j]
            if self.real_end[j] > earliest:
                earliest, bound_by = self.real_end[j], j
        if cp.traffic is not None:
            j = self.cohort_last.get(cp.traffic.cohort, -1)
            if j >= 0 and self.real_end[j] > earliest:
                earliest, bound_by = self.real_end[j], j

        done_at = self.done.get(cp.id)
        started_at = self.started.get(cp.id)
        if done_at is not None:
            start = min(started_at or earliest, done_at)
            return _Slot(i, start, done_at, start, done_at, "done")

        late_at = self.late.get(cp.id)
        if started_at is None and self.now is not None and self.now > earliest:
            earliest, bound_by = self.now, -1  # what has not started cannot start in the past
        start = started_at or earliest
        end = start + length
        if started_at is not None and self.now is not None and self.now > end:
            end = self.now  # running past its length: it ends no earlier than now
        late_drove_end = late_at is not None and late_at > end
        if late_at is not None and late_drove_end:
            end = late_at
        status = "late" if late_at is not None else ("active" if started_at is not None else "")
        slot = _Slot(i, start, end, start, end, status)
        # Something that has started was let through: its plan hold and upstream waits are over.
        if started_at is None:
            slot.plan_hold = (cp.hold is not None or cp.protected) and cp.id not in self.released
            slot.upstream_holds = upstream

        if not_after is not None and end > not_after and cp.id not in self.waived:
            if late_drove_end:
                why = f"it was reported late until {self.clock(end)}"
            elif started_at is not None:
                why = f"it started at {self.clock(start)} and takes {format_duration(length)}"
            elif bound_by >= 0:
                dep_id = self.plan.checkpoints[bound_by].id
                why = f"it comes after {dep_id}, which ends {self.clock(start)}, and takes "
                why += format_duration(length)
            elif self.now is not None and start == self.now:
                why = f"it cannot start before now ({self.clock(start)}) and takes {format_duration(length)}"
            else:
                why = f"it takes {format_duration(length)} from {self.clock(start)}"
            needs = f"needs until {self.clock(end)}, {format_duration(end - not_after)} past its "
            needs += f"not_after {self.clock(not_after)}, because {why}"
            if cp.protected:
                slot.conflict = f"{needs}; protected, so held inside its window instead of moved past it"
                slot.conflict_hold = True
                slot.start, slot.end = _clamped(start, lower, length, not_after, started=started_at)
                if self.now is not None:
                    # Never plan the past: what has not started is shown from now at the earliest,
                    # what runs ends no earlier than now, even when its window closes before.
                    if started_at is None and slot.start < self.now:
                        slot.start = self.now
                    if slot.end < slot.start or slot.end < self.now:
                        slot.end = max(slot.start, self.now)
            else:
                slot.conflict = f"{needs}; not protected, so moved past it"
        return slot

    def waits_on(self, slot: _Slot) -> tuple[str, ...]:
        # Many checkpoints share the same upstream holds, so each distinct set is decoded once.
        names = self._decoded.get(slot.upstream_holds)
        if names is None:
            held: list[int] = []
            mask = slot.upstream_holds
            while mask:
                lowest = mask & -mask
                held.append(self.held_order[lowest.bit_length() - 1])
                mask ^= lowest
            names = tuple(self.plan.checkpoints[i].id for i in sorted(held))
            self._decoded[slot.upstream_holds] = names
        return names

    def clock(self, value: datetime) -> str:
        """A time as people in the war room say it: 22:40, with the date when it is not day one."""
        if value.date() == self.window_start.date():
            return value.strftime("%H:%M")
        return value.strftime("%H:%M on %Y-%m-%d")


def _clamped(
    start: datetime, lower: datetime, length: timedelta, not_after: datetime, *, started: datetime | None
) -> tuple[datetime, datetime]:
    """The slot a conflicting protected checkpoint was meant to take: ending at its boundary.

    `lower` is where its window opens; a window too narrow for the work starts there (and a
    window that closes before it opens collapses onto its boundary), never outside it.
    """
    if started is not None:
        # A start that happened is not rewritten; only the end is pulled back to the boundary.
        return start, max(start, not_after)
    return min(max(lower, not_after - length), not_after), not_after


def _planned(
    cp: Checkpoint,
    slot: _Slot,
    acting_by_role: Mapping[str, str],
    waits_on: tuple[str, ...],
    window: CheckpointWindow | None,
    local: Callable[[datetime], datetime],
) -> PlannedCheckpoint:
    try:
        owner_user = acting_by_role[cp.owner]
        observer_users = tuple([acting_by_role[role] for role in cp.observers])
    except KeyError as exc:
        raise TimelineError(f"{cp.id} names role {exc.args[0]}, which the plan does not define") from None
    # Positional, in field order: this runs once per checkpoint per resequence.
    return PlannedCheckpoint(
        cp.id,
        cp.title,
        cp.owner,
        owner_user,
        tuple(cp.observers),
        observer_users,
        slot.start,
        slot.end,
        cp.protected,
        tuple(cp.after),
        slot.held,
        slot.conflict,
        waits_on,
        slot.status,
        window.not_before and local(window.not_before) if window is not None else None,
        window.not_after and local(window.not_after) if window is not None else None,
    )


def _holds(plan: Plan, cp: Checkpoint, slot: _Slot) -> tuple[PacketHold, ...]:
    if not slot.held:
        return ()
    holds: list[PacketHold] = []
    if slot.plan_hold:
        if cp.hold is not None:
            release_by, mode = tuple(cp.hold.release_by), cp.hold.mode
            why = cp.hold.reason or f"planned hold before {cp.title}"
        else:
            release_by, mode = tuple(plan.authority.adopt_packets), "any"
            why = f"protected checkpoint: {cp.title} runs only once released"
        holds.append(
            PacketHold(
                cp.id,
                why,
                HoldSource.PLAN,
                release_by,
                mode,
            )
        )
    if slot.conflict_hold and slot.conflict is not None:
        holds.append(
            PacketHold(
                cp.id,
                f"{cp.title} {slot.conflict}",
                HoldSource.CONFLICT,
                # Released under the checkpoint's own rule (mode all stays two people).
                *(
                    (tuple(cp.hold.release_by), cp.hold.mode)
                    if cp.hold is not None
                    else (tuple(plan.authority.adopt_packets), "any")
                ),
            )
        )
    return tuple(holds)


def _index_checkpoints(checkpoints: list[Checkpoint]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, cp in enumerate(checkpoints):
        if cp.id in index:
            raise TimelineError(f"checkpoint id {cp.id} appears twice")
        index[cp.id] = i
    return index


def _dependency_indexes(cp: Checkpoint, index: Mapping[str, int]) -> tuple[int, ...]:
    # A name repeated in `after` is harmless: it is counted and released alike in Kahn's algorithm.
    try:
        return tuple([index[name] for name in cp.after])
    except KeyError as exc:
        raise TimelineError(f"{cp.id} comes after {exc.args[0]}, which is not in the plan") from None


def _topological_order(deps: list[tuple[int, ...]], names: list[str]) -> list[int]:
    """Kahn's algorithm; among checkpoints ready at once, the earliest in the plan goes first."""
    if all(j < i for i, ds in enumerate(deps) for j in ds):
        # Plans are nearly always written in order; then plan order is already the answer.
        return list(range(len(deps)))
    dependents: list[list[int]] = [[] for _ in deps]
    waiting = [len(d) for d in deps]
    for i, ds in enumerate(deps):
        for j in ds:
            dependents[j].append(i)
    ready = [i for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for k in dependents[i]:
            waiting[k] -= 1
            if waiting[k] == 0:
                heapq.heappush(ready, k)
    if len(order) != len(deps):
        stuck = [names[i] for i, n in enumerate(waiting) if n > 0]
        raise TimelineError(f"checkpoints wait on each other in a cycle: {', '.join(stuck)}")
    return order


def _check_facts(facts: Facts, index: Mapping[str, int]) -> None:
    unknown = sorted(facts.checkpoints() - index.keys())
    if unknown:
        raise TimelineError(f"facts name checkpoints the plan does not have: {', '.join(unknown)}")
