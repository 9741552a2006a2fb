"""The pace toward a rate-limited remote (Slack's Web API), one row per method, shared by replicas.

Pacing is by reservation, like GCRA: `reserve` is one atomic statement that takes the method's
next free slot — the latest of `next_slot`, `not_before` and now — and moves `next_slot` on by
1/rate; the caller sleeps until its slot. However many replicas reserve, the slots they get are
1/rate apart, so together they start at most `rate` calls a second. A slot further away than the
caller would wait is not taken (the row is left as it was), so callers that give up do not push
the slots of the others back. Why slots rather than a sliding window like Slack's own (what one
process did before): a window shared by replicas needs a row per call and a count per call; a
slot needs one row per method and one UPDATE per call. Even spacing forgoes the burst an empty
window would allow at the start of a fan-out (a fraction of a second per fan-out); a caller may
take back the slots of the last `CATCH_UP` seconds, so a stall of every sender costs little.

Every time is seconds since the epoch on the database's clock (`clock_timestamp()` on
PostgreSQL, the file's host on SQLite): replicas on hosts whose clocks disagree still agree on
every slot, and a replica only ever turns a slot into a duration (`Turn.wait`) to sleep. Plain
floats, not timestamps: `slot + 1/rate` is then the same SQL on both databases.

What a 429 teaches (`learn`, `learned_rate`): Retry-After becomes `not_before` for everyone; the
rate is never raised by one replica's report, with one exception. Calls made without a known rate
count what Slack let through *to that replica* in the last second; when replicas burst together
each sees only its share of one allowance, so the shares reported within one second of the first
are added up (a dispatcher reports once per burst). A 429 on a paced call means the rate in force
was too high: when another follows within ten seconds (one alone may be the network bunching
arrivals), it is lowered by a tenth, at most once a second.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Float, case, cast, extract, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from store.sql import insert_unless_exists
from store.tables import slack_pace

# Pace a little under what was let through: Slack counts arrivals, and the network moves them.
SAFETY = 0.95
# Seconds of slots a caller may take back after a lull: a slot left unused because every caller
# was busy (writing to the store, rendering) is made up within this much, so a fan-out is not
# slowed by each stall. Slack's one-second window then sees at most this fraction of a second's
# calls more than the rate: 4 % at any rate, inside the 5 % SAFETY leaves and an operator's cap.
CATCH_UP = 0.04
# A 429 on a paced call: the rate in force becomes this much of itself.
DECREASE = 0.9
# Seconds: reports closer than this to the rate's last change belong to the same burst.
EPISODE = 1.0
# Seconds: a paced call refused again within this long lowers the rate (once alone does not).
PERSISTENT = 10.0
# No lower than one call a minute (Slack's slowest tier): a stream of 429s cannot stop a method.
MIN_RATE = 1 / 60

_UNIX_EPOCH_JULIAN_DAY = 2440587.5
_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Turn:
    """A reservation: the slot's start and the database's clock then (seconds since the epoch)."""

    slot: float
    now: float
    rate: float | None  # the learned rate (None: only the caller's cap paces the method)
    reserved: bool  # False: the slot was further away than the caller would wait; not taken

    @property
    def wait(self) -> float:
        return max(0.0, self.slot - self.now)


@dataclass(frozen=True, slots=True)
class MethodPace:
    method: str
    rate: float | None
    not_before: float
    now: float

    @property
    def wait(self) -> float:
        """Seconds until the method may be called again (Retry-After)."""
        return max(0.0, self.not_before - self.now)


@dataclass(frozen=True, slots=True)
class Learned:
    """What the 429s taught about one method so far (times on the database's clock)."""

    rate: float | None = None
    learned_at: float | None = None  # when `rate` last changed
    refused_at: float | None = None  # when a paced call last met a 429


def learned_rate(was: Learned, *, now: float, let_through: int | None, paced_at: float | None) -> Learned:
    """What is known after a 429. `let_through`: the successful calls of the reporting replica in
    the second before it, made without a known rate (None: too few to say anything). `paced_at`:
    the rate the refused call was paced at (None: it was not paced)."""
    same_burst = was.rate is not None and was.learned_at is not None and now - was.learned_at < EPISODE
    if paced_at is not None:
        since = None if was.refused_at is None else now - was.refused_at
        if same_burst or (since is not None and since < EPISODE):
            return was  # the same bunch of refusals
        if since is None or since > PERSISTENT:
            # One refusal alone may be the network bunching arrivals: lowering the rate for good
            # on it would slow every fan-out after. A second one within PERSISTENT seconds says
            # the rate in force is too high.
            return replace(was, refused_at=now)
        lowered = max(MIN_RATE, paced_at * DECREASE)
        return Learned(lowered if was.rate is None else min(was.rate, lowered), now, now)
    if let_through is None:
        return was
    seen = max(MIN_RATE, let_through * SAFETY)
    if was.rate is None:
        return replace(was, rate=seen, learned_at=now)
    if same_burst:
        return replace(was, rate=was.rate + seen)  # another replica's share of the same second
    # A replica that had not heard of the rate yet: its count is a share, not the allowance.
    return was


def interval(rate: float | None, cap: float | None) -> float:
    """Seconds between slots: the lower of the learned rate and the caller's cap."""
    rates = [r for r in (rate, cap) if r is not None and r > 0]
    return 1.0 / min(rates) if rates else 0.0


def _clock(connection: AsyncConnection) -> ColumnElement[float]:
    if connection.dialect.name == "postgresql":
        # clock_timestamp(), not now(): the transaction may have waited for the row lock.
        return cast(extract("epoch", func.clock_timestamp()), Float)
    return (func.julianday("now") - _UNIX_EPOCH_JULIAN_DAY) * _SECONDS_PER_DAY


def _later(*values: ColumnElement[Any]) -> ColumnElement[Any]:
    # GREATEST on PostgreSQL, MAX(a, b) on SQLite: CASE is spelled the same on both.
    latest = values[0]
    for value in values[1:]:
        latest = case((value > latest, value), else_=latest)
    return latest


def _sql_interval(cap: float | None) -> ColumnElement[float]:
    rate = slack_pace.c.rate
    if cap is None or cap <= 0:
        return case((rate > 0, literal(1.0, Float) / rate), else_=literal(0.0, Float))
    return case((rate < cap, literal(1.0, Float) / rate), else_=literal(1.0 / cap, Float))


class Pace:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def all(self) -> list[MethodPace]:
        now = _clock(self._connection).label("now")
        t = slack_pace
        result = await self._connection.execute(select(t.c.method, t.c.rate, t.c.not_before, now))
        return [MethodPace(m.method, m.rate, m.not_before, m.now) for m in result.mappings()]

    async def reserve(self, method: str, *, cap: float | None, within: float) -> Turn:
        """Take the method's next slot if it starts within `within` seconds from now."""
        for _ in range(2):
            turn = await self._take(method, cap=cap, within=within)
            if turn is not None:
                return turn
            await self._ensure(method)
        raise RuntimeError(f"slack_pace row for {method} vanished twice")  # pragma: no cover

    async def _take(self, method: str, *, cap: float | None, within: float) -> Turn | None:
        t = slack_pace
        now = _clock(self._connection)
        start = _later(t.c.next_slot, t.c.not_before, now - CATCH_UP)
        taken = await self._connection.execute(
            update(t)
            .where(t.c.method == method, start <= now + within)
            .values(next_slot=start + _sql_interval(cap))
            .returning(t.c.next_slot, t.c.rate, now.label("now"))
        )
        row = taken.mappings().one_or_none()
        if row is not None:
            slot = row["next_slot"] - interval(row["rate"], cap)
            return Turn(slot=slot, now=row["now"], rate=row["rate"], reserved=True)
        # Too far away, or no row yet: say when the slot would be, taking nothing.
        seen = await self._connection.execute(
            select(start.label("slot"), t.c.rate, now.label("now")).where(t.c.method == method)
        )
        free = seen.mappings().one_or_none()
        if free is None:
            return None
        return Turn(slot=free["slot"], now=free["now"], rate=free["rate"], reserved=False)

    async def learn(
        self, method: str, *, retry_after: float, let_through: int | None, paced_at: float | None
    ) -> MethodPace:
        """Slack answered 429 to `method`: every replica waits out `retry_after`; the rate per
        `learned_rate`. Two statements under the row's lock: a 429 is rare, clarity wins."""
        await self._ensure(method)
        t = slack_pace
        now_column = _clock(self._connection).label("now")
        held = await self._connection.execute(
            select(t.c.rate, t.c.learned_at, t.c.refused_at, t.c.not_before, now_column)
            .where(t.c.method == method)
            .with_for_update()
        )
        row = held.mappings().one()
        now = float(row["now"])
        was = Learned(row["rate"], row["learned_at"], row["refused_at"])
        learned = learned_rate(was, now=now, let_through=let_through, paced_at=paced_at)
        not_before = max(float(row["not_before"]), now + max(retry_after, 0.0))
        await self._connection.execute(
            update(t)
            .where(t.c.method == method)
            .values(
                rate=learned.rate,
                learned_at=learned.learned_at,
                refused_at=learned.refused_at,
                not_before=not_before,
            )
        )
        return MethodPace(method, learned.rate, not_before, now)

    async def _ensure(self, method: str) -> None:
        await insert_unless_exists(
            self._connection, slack_pace, {"method": method, "not_before": 0.0, "next_slot": 0.0}
        )
