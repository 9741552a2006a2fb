"""The inbox: Slack requests written down before Slack hears 200, processed once by any replica.

Life of a row: written `processing`, claimed by the replica that received it (it starts at once);
`processing` -> `done`, or back to `pending` with a later `next_attempt_at` when processing
failed or the replica stopped before finishing. A claim is a lease (`claimed_by`,
`claimed_until`): a replica that dies leaves its rows to any other once the lease passes, and to
itself at once when it restarts under the same identity (`take_back`).

Processed once: while a row is processed, `CURRENT` names it, and the first write transaction
that commits in that context marks it `done` in the same transaction (`UnitOfWork` calls
`complete`), under a compare-and-set on the claim. A replica that lost its claim (another took the
row over after the lease passed) cannot commit the use case a second time: the compare-and-set
finds nothing and the transaction rolls back with `ClaimLost`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from store.sql import insert_many_returning
from store.tables import inbox


class InboxState(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"


class ClaimLost(Exception):
    """The inbox row being processed is no longer this replica's: its work must not commit."""

    def __init__(self, row_id: int) -> None:
        super().__init__(f"inbox row {row_id} was taken over by another replica")
        self.row_id = row_id


@dataclass(slots=True)
class Claim:
    """The inbox row the current task is processing; `done` once a transaction marked it so."""

    id: int
    by: str
    at: datetime
    done: bool = False


# Set by the intake around one row's processing; read by UnitOfWork before each commit.
CURRENT: ContextVar[Claim | None] = ContextVar("cutover_inbox_claim", default=None)


@dataclass(frozen=True, slots=True)
class Arriving:
    """A request to write down (`Inbox.accept`)."""

    dedupe_key: str
    body: str
    headers: dict[str, str]
    at: datetime


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    dedupe_key: str
    body: str
    headers: dict[str, str]
    state: str
    attempts: int
    received_at: datetime
    claimed_by: str | None
    claimed_until: datetime | None


def _row(mapping: Any) -> InboxRow:
    return InboxRow(
        id=mapping["id"],
        dedupe_key=mapping["dedupe_key"],
        body=mapping["body"],
        headers=dict(mapping["headers"] or {}),
        state=mapping["state"],
        attempts=mapping["attempts"],
        received_at=mapping["received_at"],
        claimed_by=mapping["claimed_by"],
        claimed_until=mapping["claimed_until"],
    )


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(inbox.c.state == InboxState.PENDING.value, inbox.c.next_attempt_at <= now),
        and_(inbox.c.state == InboxState.PROCESSING.value, inbox.c.claimed_until <= now),
    )


@dataclass(frozen=True, slots=True)
class InboxDepth:
    waiting: int  # pending or processing
    oldest: datetime | None  # when the oldest waiting row arrived


class Inbox:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def accept(self, requests: Sequence[Arriving], *, by: str, lease: timedelta) -> list[int | None]:
        """Write requests down in one statement, claimed by `by`: their ids in order, None for a
        body seen before (in the table, or earlier in `requests`)."""
        fresh: dict[str, Arriving] = {}
        for request in requests:
            fresh.setdefault(request.dedupe_key, request)
        if not fresh:
            return []
        values = [
            {
                "dedupe_key": r.dedupe_key,
                "body": r.body,
                "headers": r.headers,
                "state": InboxState.PROCESSING.value,
                "attempts": 1,
                "received_at": r.at,
                "next_attempt_at": r.at,
                "claimed_by": by,
                "claimed_until": r.at + lease,
            }
            # In key order: two replicas writing the same keys at once (a retry racing its
            # original) wait for each other in one order on PostgreSQL, never in a deadlock.
            for r in sorted(fresh.values(), key=lambda r: r.dedupe_key)
        ]
        key = inbox.c.dedupe_key
        inserted = await insert_many_returning(self._connection, inbox, values, inbox.c.id, key)
        # Matched by key (RETURNING gives no order), and only to the first comer with that key.
        ids = {row.dedupe_key: int(row.id) for row in inserted}
        return [ids.get(r.dedupe_key) if fresh[r.dedupe_key] is r else None for r in requests]

    async def claim(self, *, now: datetime, limit: int, by: str, lease: timedelta) -> list[InboxRow]:
        """Up to `limit` due rows, oldest first, claimed by `by` until `now + lease`.

        `FOR UPDATE SKIP LOCKED` on PostgreSQL: replicas claiming at once take disjoint rows."""
        candidates = (
            select(inbox.c.id)
            .where(_claimable(now))
            .order_by(inbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = [row.id for row in await self._connection.execute(candidates)]
        if not ids:
            return []
        statement = (
            update(inbox)
            .where(inbox.c.id.in_(ids))
            .values(
                state=InboxState.PROCESSING.value,
                claimed_by=by,
                claimed_until=now + lease,
                attempts=inbox.c.attempts + 1,
            )
            .returning(*inbox.c)
        )
        rows = [_row(m) for m in (await self._connection.execute(statement)).mappings()]
        return sorted(rows, key=lambda row: row.id)

    async def renew(self, ids: Sequence[int], *, by: str, until: datetime) -> set[int]:
        """Extend the claims `by` still holds; which of `ids` were renewed."""
        if not ids:
            return set()
        statement = (
            update(inbox)
            .where(
                inbox.c.id.in_(list(ids)),
                inbox.c.state == InboxState.PROCESSING.value,
                inbox.c.claimed_by == by,
            )
            .values(claimed_until=until)
            .returning(inbox.c.id)
        )
        return {row.id for row in await self._connection.execute(statement)}

    async def complete(self, id: int, *, by: str, at: datetime) -> bool:
        """Mark the row done if `by` still holds it (compare-and-set); False when it does not."""
        statement = (
            update(inbox)
            .where(
                inbox.c.id == id,
                inbox.c.state == InboxState.PROCESSING.value,
                inbox.c.claimed_by == by,
            )
            .values(state=InboxState.DONE.value, done_at=at, claimed_until=None, last_error=None)
            .returning(inbox.c.id)
        )
        return (await self._connection.execute(statement)).first() is not None

    async def release(self, id: int, *, by: str, next_attempt_at: datetime, error: str | None) -> bool:
        """Give a row `by` holds back to every replica, not to be tried before `next_attempt_at`."""
        statement = (
            update(inbox)
            .where(
                inbox.c.id == id,
                inbox.c.state == InboxState.PROCESSING.value,
                inbox.c.claimed_by == by,
            )
            .values(
                state=InboxState.PENDING.value,
                claimed_by=None,
                claimed_until=None,
                next_attempt_at=next_attempt_at,
                last_error=error,
            )
            .returning(inbox.c.id)
        )
        return (await self._connection.execute(statement)).first() is not None

    async def take_back(self, *, by: str, now: datetime) -> int:
        """Rows an earlier life of this replica held: claimable at once. How many."""
        statement = (
            update(inbox)
            .where(inbox.c.state == InboxState.PROCESSING.value, inbox.c.claimed_by == by)
            .values(state=InboxState.PENDING.value, claimed_by=None, claimed_until=None, next_attempt_at=now)
            .returning(inbox.c.id)
        )
        return len((await self._connection.execute(statement)).all())

    async def get(self, id: int) -> InboxRow | None:
        mapping = (await self._connection.execute(select(inbox).where(inbox.c.id == id))).mappings().first()
        return None if mapping is None else _row(mapping)

    async def all(self) -> list[InboxRow]:
        statement = select(inbox).order_by(inbox.c.id)
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]

    async def depth(self) -> InboxDepth:
        """How many requests wait (pending or being processed) and when the oldest arrived."""
        statement = select(func.count(), func.min(inbox.c.received_at)).where(
            inbox.c.state != InboxState.DONE.value
        )
        count, oldest = (await self._connection.execute(statement)).one()
        return InboxDepth(waiting=int(count), oldest=oldest)

    async def purge_done(self, *, before: datetime) -> int:
        """Forget finished rows received before `before` (past Slack's five-minute replay window)."""
        statement = (
            inbox.delete()
            .where(inbox.c.state == InboxState.DONE.value, inbox.c.received_at < before)
            .returning(inbox.c.id)
        )
        return len((await self._connection.execute(statement)).all())
