"""The pace toward Slack, shared by every replica: the dispatcher's `PacePort` and its two homes.

Slack's limits are per app and Web API method, whichever replica calls. So what one replica learns
from a 429 (the rate Slack lets through, Retry-After) is written where every replica reads it, and
a method whose rate is known is paced by reservation: each call first takes the method's next slot
(`store.pace` explains the rules), and N replicas together keep under one rate.

- `StorePace`: the `slack_pace` table, one short transaction per reservation (production, wired
  in bot.wiring).
- `LocalPace`: the same rules in memory, on the dispatcher's own clock: one process, no database
  (the dispatcher's default, its unit tests).

A method with neither a learned rate nor a configured cap costs no round trip per call: the
dispatcher only asks `known()` about it, at most once a second.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from store.pace import CATCH_UP, Learned, interval, learned_rate
from store.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class Turn:
    """A call's turn: seconds to wait for it, and the rate learned for the method (None: none)."""

    wait: float
    rate: float | None
    taken: bool  # False: the turn was further away than the caller would wait; not taken


@dataclass(frozen=True, slots=True)
class Known:
    """What every replica knows of a method: its learned rate and the Retry-After left, in seconds."""

    rate: float | None
    wait: float


class PacePort(Protocol):
    async def known(self) -> Mapping[str, Known]:
        """Every method with a row: its learned rate (or None) and the Retry-After still running."""
        ...

    async def reserve(self, method: str, *, cap: float | None, within: float) -> Turn:
        """Take the method's next slot, paced at the lower of the learned rate and `cap`, unless it
        starts more than `within` seconds from now."""
        ...

    async def learn(
        self, method: str, *, retry_after: float, let_through: int | None, paced_at: float | None
    ) -> Known:
        """Slack answered 429 (see `store.pace.learned_rate` for `let_through` and `paced_at`)."""
        ...


class StorePace:
    """`PacePort` over the `slack_pace` table: shared by every replica on the database."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def known(self) -> Mapping[str, Known]:
        async with self._uow.transaction(read_only=True) as tx:
            rows = await tx.pace.all()
        return {row.method: Known(rate=row.rate, wait=row.wait) for row in rows}

    async def reserve(self, method: str, *, cap: float | None, within: float) -> Turn:
        async with self._uow.transaction() as tx:
            turn = await tx.pace.reserve(method, cap=cap, within=within)
        return Turn(wait=turn.wait, rate=turn.rate, taken=turn.reserved)

    async def learn(
        self, method: str, *, retry_after: float, let_through: int | None, paced_at: float | None
    ) -> Known:
        async with self._uow.transaction() as tx:
            pace = await tx.pace.learn(
                method, retry_after=retry_after, let_through=let_through, paced_at=paced_at
            )
        return Known(rate=pace.rate, wait=pace.wait)


@dataclass(slots=True)
class _Method:
    learned: Learned = field(default_factory=Learned)
    not_before: float = -math.inf
    next_slot: float = -math.inf


class LocalPace:
    """`PacePort` in memory: the same rules as the table, for one process."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._methods: dict[str, _Method] = {}

    async def known(self) -> Mapping[str, Known]:
        now = self._monotonic()
        return {
            name: Known(rate=m.learned.rate, wait=max(0.0, m.not_before - now))
            for name, m in self._methods.items()
        }

    async def reserve(self, method: str, *, cap: float | None, within: float) -> Turn:
        pace = self._methods.setdefault(method, _Method())
        now = self._monotonic()
        start = max(pace.next_slot, pace.not_before, now - CATCH_UP)
        if start > now + within:
            return Turn(wait=start - now, rate=pace.learned.rate, taken=False)
        pace.next_slot = start + interval(pace.learned.rate, cap)
        return Turn(wait=start - now, rate=pace.learned.rate, taken=True)

    async def learn(
        self, method: str, *, retry_after: float, let_through: int | None, paced_at: float | None
    ) -> Known:
        pace = self._methods.setdefault(method, _Method())
        now = self._monotonic()
        pace.learned = learned_rate(pace.learned, now=now, let_through=let_through, paced_at=paced_at)
        pace.not_before = max(pace.not_before, now + max(retry_after, 0.0))
        return Known(rate=pace.learned.rate, wait=pace.not_before - now)
