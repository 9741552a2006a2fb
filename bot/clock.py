"""Clocks: the wall clock for the bot, a simulated one for the rehearsal and tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """Time moves only when told to: hours of a cutover in a blink, same result every run."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, by: timedelta) -> None:
        self._now += by

    def set(self, to: datetime) -> None:
        if to < self._now:
            raise ValueError("a simulated clock never goes backwards")
        self._now = to
