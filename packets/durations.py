"""Durations as people write them in plans and slash commands: `15m`, `1h30m`, `90s`, `2d`; and
the times a slash command names (`23:40`, `+30m`), resolved against the run's clock and window."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_PART = re.compile(r"(\d+)([dhms])")
_WHOLE = re.compile(r"^(?:\d+[dhms])+$")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


class DurationError(ValueError):
    """A duration text that is not of the form `1h30m`."""


def parse_duration(text: str) -> timedelta:
    """Parse `1h30m`-style text; a bare `0` is zero. Units: d, h, m, s, largest first or not."""
    cleaned = text.strip().lower().replace(" ", "")
    if cleaned == "0":
        return timedelta(0)
    if not _WHOLE.match(cleaned):
        raise DurationError(f"{text!r} is not a duration like 15m, 1h30m or 90s")
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(cleaned))
    if seconds > 400 * 86400:
        raise DurationError(f"{text!r} is longer than 400 days")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest `1h30m` form; negative values get a leading minus."""
    total = int(value.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    if total == 0:
        return "0m"
    parts: list[str] = []
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return sign + "".join(parts)


@dataclass(frozen=True, slots=True)
class TimeOfDay:
    hour: int
    minute: int


# What a person may type for "when": a wall-clock time, a delay from now, or (from code) an instant.
TimeSpec = TimeOfDay | timedelta


def resolve_time(spec: TimeSpec | datetime, *, now: datetime, tz_of: datetime) -> datetime:
    """Turn `+30m` or `23:40` into an instant (an instant is already one).

    `+30m` is from now. `HH:MM` is wall-clock time in the offset of the plan window (`tz_of`),
    and means its next occurrence within 12 hours either side of now that is closest to now:
    in an evening window that crosses midnight, `00:30` typed at 23:10 means the next day.
    """
    if isinstance(spec, datetime):
        return spec
    if isinstance(spec, timedelta):
        return now + spec
    local_now = now.astimezone(tz_of.tzinfo)
    candidate = local_now.replace(hour=spec.hour, minute=spec.minute, second=0, microsecond=0)
    options = [candidate + timedelta(days=d) for d in (-1, 0, 1)]
    return min(options, key=lambda c: abs(c - local_now))
