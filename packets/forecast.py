"""Planned, actual, forecast: where every checkpoint stands against the authoritative packet.

`forecast(plan=, packet=, progress=, facts=, now=)` is pure and cheap (one scheduling pass), so
it is recomputed whenever anything changes (a hold opened or released, a freeze, a pause, a gate
hold, a late report, a done) rather than kept up to date.

Per checkpoint:

- planned: its start and end in the authoritative `packet`;
- actual: its start and end once known, from the engine's progress and from people's facts
  (`done`, `started`); None while unknown;
- forecast: the actual time where known, otherwise the earliest it can happen now. The forecast
  is scheduled by the resequencer itself (`timeline.build_packet` with `now`), so a proposal
  built from the forecast shows exactly the forecast: a pending checkpoint starts no earlier
  than now, after its dependencies' forecast ends (and the previous shift of its cohort), inside
  its window, and takes its duration plus soak; one that runs (held, paused or frozen included)
  ends no earlier than now.

The critical path is the chain of checkpoints, ending with the one that ends last, in which
each one's forecast start is set by the end of the one before it. `behind` is how late the
forecast end is against the planned end (zero when on time or early).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from typing import Any

from packets.durations import format_duration
from packets.engine.progress import CheckpointState, RunProgress
from packets.packet import Packet
from packets.plan import Plan
from packets.timeline import Facts, build_packet

_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class Actual:
    """When a checkpoint really started and ended; None while unknown."""

    started_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CheckpointForecast:
    id: str
    title: str
    owner_user: str
    planned_start: datetime
    planned_end: datetime
    actual_start: datetime | None
    actual_end: datetime | None
    start: datetime  # forecast
    end: datetime  # forecast
    critical: bool = False

    @property
    def behind(self) -> timedelta:
        """How late the forecast end is against the plan; zero when on time or early."""
        return max(self.end - self.planned_end, _ZERO)

    @property
    def shift(self) -> timedelta:
        """How far the forecast moved it from the plan, either way, at either end."""
        return max(abs(self.start - self.planned_start), abs(self.end - self.planned_end))

    @property
    def done(self) -> bool:
        return self.actual_end is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "planned_start": self.planned_start.isoformat(),
            "planned_end": self.planned_end.isoformat(),
            "actual_start": _iso(self.actual_start),
            "actual_end": _iso(self.actual_end),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "behind": _whole_minutes(self.behind),
            "critical": self.critical,
        }


@dataclass(frozen=True, slots=True)
class Forecast:
    at: datetime
    packet_version: int
    checkpoints: tuple[CheckpointForecast, ...]  # in the authoritative packet's timeline order
    critical_path: tuple[str, ...]
    end: datetime  # the forecast end of the run: the last checkpoint's forecast end
    planned_end: datetime
    window_end: datetime

    @property
    def overrun(self) -> timedelta:
        """How far the forecast end passes the plan window's end; zero when it fits."""
        return max(self.end - self.window_end, _ZERO)

    @property
    def behind(self) -> timedelta:
        return max(self.end - self.planned_end, _ZERO)

    def as_json(self) -> dict[str, Any]:
        """Plain data for the templates: times in the plan's offset, `behind`/`overrun` in minutes."""
        return {
            "at": self.at.isoformat(),
            "version": self.packet_version,
            "end": self.end.isoformat(),
            "planned_end": self.planned_end.isoformat(),
            "window_end": self.window_end.isoformat(),
            "behind": _whole_minutes(self.behind),
            "overrun": _whole_minutes(self.overrun),
            "critical_path": list(self.critical_path),
            "checkpoints": [c.as_json() for c in self.checkpoints],
        }

    def lines(self) -> list[str]:
        """The forecast as sentences, one per checkpoint, then the critical path and the end."""
        out = [_line(c) for c in self.checkpoints]
        out.append(f"Critical path: {' → '.join(self.critical_path) or 'none'}.")
        out.append(_end_line(self))
        return out

    def of(self, checkpoint: str) -> CheckpointForecast:
        for line in self.checkpoints:
            if line.id == checkpoint:
                return line
        raise KeyError(checkpoint)

    def drifted(self, material_shift: timedelta) -> tuple[CheckpointForecast, ...]:
        """The checkpoints the forecast moves by at least `material_shift` against the plan."""
        return tuple(c for c in self.checkpoints if c.shift >= material_shift)


def actuals(progress: RunProgress, facts: Facts) -> dict[str, Actual]:
    """Per checkpoint that started or ended, its actual times (the engine's first, then people's)."""
    found: dict[str, Actual] = {}
    names = set(progress.checkpoints)
    if facts.started or facts.done:
        names |= set(facts.started) | set(facts.done)
    for cid in names:
        state = progress.checkpoints.get(cid)
        started = ended = None
        if state is not None:
            started = state.started_at
            if state.state is CheckpointState.DONE:
                ended = state.done_at
        if started is None:
            started = facts.started.get(cid)
        if ended is None:
            ended = facts.done.get(cid)
        if ended is not None and (started is None or started > ended):
            # What ended had started: a hold checkpoint completes in the moment it is released.
            started = ended
        if started is None and ended is None:
            continue
        found[cid] = Actual(started_at=started, ended_at=ended)
    return found


def with_actuals(facts: Facts, progress: RunProgress) -> Facts:
    """`facts` plus every start and end the engine saw: what a forecast is scheduled from."""
    known = actuals(progress, facts)
    started = dict(facts.started)
    done = dict(facts.done)
    for cid, actual in known.items():
        if actual.started_at is not None:
            started[cid] = actual.started_at
        if actual.ended_at is not None:
            done[cid] = actual.ended_at
    return replace(facts, started=started, done=done)


def forecast_packet(
    *,
    plan: Plan,
    progress: RunProgress,
    facts: Facts,
    now: datetime,
    version: int,
    supersedes: int | None,
    reason: str,
    acting: Mapping[str, str],
) -> Packet:
    """The next packet version built from the forecast at `now` (a drift proposal)."""
    return build_packet(
        plan,
        with_actuals(facts, progress),
        version=version,
        supersedes=supersedes,
        reason=reason,
        acting=acting,
        plan_revision=plan.revision,
        now=now,
    )


def forecast(
    *,
    plan: Plan,
    packet: Packet,
    progress: RunProgress,
    facts: Facts,
    now: datetime,
    acting: Mapping[str, str] | None = None,
) -> Forecast:
    """Planned (from `packet`), actual and forecast times of every checkpoint at `now`."""
    tz = plan.window.start.tzinfo
    now = now.astimezone(tz)
    scheduled = forecast_packet(
        plan=plan,
        progress=progress,
        facts=facts,
        now=now,
        version=packet.version,
        supersedes=packet.supersedes,
        reason=packet.reason,
        acting=acting if acting is not None else _acting_of(packet),
    )
    known = actuals(progress, facts)
    unknown = Actual()
    lines: list[CheckpointForecast] = []
    for planned in packet.timeline:
        if not scheduled.has(planned.id):
            continue
        guess = scheduled.checkpoint(planned.id)
        actual = known.get(planned.id, unknown)
        # Positional, in field order: this runs once per checkpoint on every recomputation.
        lines.append(
            CheckpointForecast(
                planned.id,
                planned.title,
                planned.owner_user,
                _local(planned.start, tz),
                _local(planned.end, tz),
                _maybe_local(actual.started_at, tz),
                _maybe_local(actual.ended_at, tz),
                guess.start,  # the resequencer already speaks the plan window's offset
                guess.end,
            )
        )
    path = _critical_path(plan, lines)
    on_path = set(path)
    lines = [replace(c, critical=True) if c.id in on_path else c for c in lines]
    end = max((c.end for c in lines), default=plan.window.start)
    planned_end = max((c.planned_end for c in lines), default=plan.window.start)
    return Forecast(
        at=now,
        packet_version=packet.version,
        checkpoints=tuple(lines),
        critical_path=path,
        end=end,
        planned_end=planned_end,
        window_end=plan.window.end.astimezone(tz),
    )


def _acting_of(packet: Packet) -> dict[str, str]:
    # The packet resolved every owner and observer to the acting user of its time.
    acting: dict[str, str] = {}
    for line in packet.timeline:
        acting[line.owner_role] = line.owner_user
        acting.update(zip(line.observer_roles, line.observer_users, strict=False))
    return acting


def _local(value: datetime, tz: tzinfo | None) -> datetime:
    return value if value.tzinfo is tz else value.astimezone(tz)


def _maybe_local(value: datetime | None, tz: tzinfo | None) -> datetime | None:
    return None if value is None else _local(value, tz)


def _critical_path(plan: Plan, lines: list[CheckpointForecast]) -> tuple[str, ...]:
    """Back from the checkpoint that ends last, through whichever predecessor set each start."""
    if not lines:
        return ()
    by_id = {c.id: c for c in lines}
    checkpoints = {cp.id: cp for cp in plan.checkpoints}
    # The previous traffic checkpoint on the same cohort is a predecessor too (no overlap).
    cohort_before: dict[str, str] = {}
    last_on: dict[str, str] = {}
    for line in sorted(lines, key=lambda c: c.start):
        traffic = checkpoints[line.id].traffic
        if traffic is not None:
            if traffic.cohort in last_on:
                cohort_before[line.id] = last_on[traffic.cohort]
            last_on[traffic.cohort] = line.id
    current: CheckpointForecast | None = max(reversed(lines), key=lambda c: c.end)
    path: list[str] = []
    seen: set[str] = set()
    while current is not None and current.id not in seen:
        path.append(current.id)
        seen.add(current.id)
        preds = [*checkpoints[current.id].after]
        if current.id in cohort_before:
            preds.append(cohort_before[current.id])
        binding = [by_id[p] for p in preds if p in by_id and by_id[p].end >= current.start]
        current = max(binding, key=lambda c: c.end) if binding else None
    return tuple(reversed(path))


def moved(reference: Packet, candidate: Packet, *, material_shift: timedelta) -> tuple[str, ...]:
    """The checkpoints `candidate` plans at least `material_shift` away from `reference`.

    Only times count: a hold released or a status changed is no drift.
    """
    out: list[str] = []
    for line in candidate.timeline:
        if not reference.has(line.id):
            continue
        old = reference.checkpoint(line.id)
        if abs(line.start - old.start) >= material_shift or abs(line.end - old.end) >= material_shift:
            out.append(line.id)
    return tuple(out)


def describe_cause(
    progress: RunProgress, *, since: datetime, now: datetime, at_least: timedelta = _ZERO
) -> str:
    """What moved the forecast since `since`, as people say it: "held 25m at canary-a".

    Holds that lasted at least `at_least` (the plan's material shift) are named, longest first;
    short ones are named only when nothing else explains the drift.
    """
    held_for: list[tuple[timedelta, str]] = []
    for hold in progress.holds.values():
        until = hold.released_at or now
        if until <= since:
            continue
        held = until - max(hold.opened_at, since)
        if held <= _ZERO:
            continue
        where = f" at {hold.checkpoint}" if hold.checkpoint else ""
        held_for.append((held, f"held {format_duration(_minutes(held))}{where}"))
    held_for.sort(key=lambda pair: -pair[0])
    long_ones = [text for held, text in held_for if held >= at_least]
    parts = long_ones or [text for _, text in held_for]
    for word, stop in (("paused", progress.paused), ("frozen", progress.frozen)):
        if stop is not None and now > stop.at:
            parts.append(f"{word} {format_duration(_minutes(now - max(stop.at, since)))} ({stop.reason})")
    if not parts:
        return "the run is behind its packet"
    return "; ".join(parts)


def _minutes(value: timedelta) -> timedelta:
    return timedelta(minutes=max(1, round(value.total_seconds() / 60)))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _whole_minutes(value: timedelta) -> int:
    return int(value.total_seconds() // 60)


def _hhmm(value: datetime | None) -> str:
    return value.strftime("%H:%M") if value is not None else "—"


def _line(c: CheckpointForecast) -> str:
    actual = f"{_hhmm(c.actual_start)}–{_hhmm(c.actual_end)}" if c.actual_start else "not started"
    text = (
        f"{c.title}: planned {_hhmm(c.planned_start)}–{_hhmm(c.planned_end)}, actual {actual}, "
        f"forecast {_hhmm(c.start)}–{_hhmm(c.end)}"
    )
    if c.behind >= timedelta(minutes=1):
        text += f", behind by {_whole_minutes(c.behind)} min"
    return text + "."


def _end_line(f: Forecast) -> str:
    if f.overrun > _ZERO:
        return (
            f"Forecast end {_hhmm(f.end)}, {_whole_minutes(f.overrun)} min past the window end "
            f"{_hhmm(f.window_end)}."
        )
    return f"Forecast end {_hhmm(f.end)}, inside the window that ends {_hhmm(f.window_end)}."
