"""The outbox: every message to Slack is first a row written in the handler's transaction.

Life of a row: `pending` -> (claimed) `sending` -> `sent`, or back to `pending` with a later
`next_attempt_at` after a retryable error, or `failed` when it will never go through. A claim is a
lease: a sender that dies mid-send leaves a `sending` row whose `claimed_until` passes, and the row
becomes claimable again (so delivery is at least once; Slack sees a duplicate only when a sender
crashed after posting and before `mark_sent`).

Order: rows for one recipient are handed out in id order, and a row is only handed out when every
earlier unfinished row for the same recipient is handed out in the same claim. A recipient whose
oldest row waits for a retry therefore waits as a whole; other recipients are unaffected. Send the
rows of one recipient in the order `claim` returns them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from store.sql import insert_returning
from store.tables import outbox


class OutboxState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


UNFINISHED = (OutboxState.PENDING.value, OutboxState.SENDING.value)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    run_id: str | None
    kind: str
    recipient: str
    payload: Any
    state: str
    attempts: int
    next_attempt_at: datetime
    claimed_until: datetime | None
    last_error: str | None
    slack_ts: str | None
    slack_channel: str | None
    created_at: datetime
    sent_at: datetime | None
    dedupe_key: str | None


def _row(mapping: Any) -> OutboxRow:
    return OutboxRow(
        id=mapping["id"],
        run_id=mapping["run_id"],
        kind=mapping["kind"],
        recipient=mapping["recipient"],
        payload=mapping["payload"],
        state=mapping["state"],
        attempts=mapping["attempts"],
        next_attempt_at=mapping["next_attempt_at"],
        claimed_until=mapping["claimed_until"],
        last_error=mapping["last_error"],
        slack_ts=mapping["slack_ts"],
        slack_channel=mapping["slack_channel"],
        created_at=mapping["created_at"],
        sent_at=mapping["sent_at"],
        dedupe_key=mapping["dedupe_key"],
    )


def _claimable(now: datetime, table: Any = outbox) -> ColumnElement[bool]:
    return or_(
        and_(table.c.state == OutboxState.PENDING.value, table.c.next_attempt_at <= now),
        and_(table.c.state == OutboxState.SENDING.value, table.c.claimed_until <= now),
    )


class Outbox:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def enqueue(
        self,
        *,
        kind: str,
        recipient: str,
        payload: Any,
        at: datetime,
        run_id: str | None = None,
        dedupe_key: str | None = None,
        not_before: datetime | None = None,
    ) -> int | None:
        """Queue one message; its id, or None when `dedupe_key` is already queued for this run."""
        values = {
            "run_id": run_id,
            "kind": kind,
            "recipient": recipient,
            "payload": payload,
            "state": OutboxState.PENDING.value,
            "attempts": 0,
            "next_attempt_at": not_before or at,
            "created_at": at,
            "dedupe_key": dedupe_key,
        }
        inserted = await insert_returning(self._connection, outbox, values, outbox.c.id)
        return None if inserted is None else int(inserted)

    async def find(self, *, run_id: str | None, dedupe_key: str) -> OutboxRow | None:
        statement = select(outbox).where(
            outbox.c.run_id.is_not_distinct_from(run_id), outbox.c.dedupe_key == dedupe_key
        )
        mapping = (await self._connection.execute(statement)).mappings().first()
        return None if mapping is None else _row(mapping)

    async def latest(self, *, run_id: str, kind: str) -> OutboxRow | None:
        """The run's newest row of `kind`, whatever its state."""
        statement = (
            select(outbox)
            .where(outbox.c.run_id == run_id, outbox.c.kind == kind)
            .order_by(outbox.c.id.desc())
            .limit(1)
        )
        mapping = (await self._connection.execute(statement)).mappings().first()
        return None if mapping is None else _row(mapping)

    async def get(self, id: int) -> OutboxRow | None:
        mapping = (await self._connection.execute(select(outbox).where(outbox.c.id == id))).mappings().first()
        return None if mapping is None else _row(mapping)

    async def claim(
        self, *, now: datetime, limit: int, lease: timedelta, by: str | None = None
    ) -> list[OutboxRow]:
        """Hand out up to `limit` due rows, marked `sending` until `now + lease`, in id order.

        On PostgreSQL the candidates are locked with `FOR UPDATE SKIP LOCKED`, so concurrent
        claimers (several replicas) take disjoint rows without waiting on each other; on SQLite the
        unit of work's single writer gives the same guarantee.
        """
        earlier = outbox.alias("earlier")
        # An earlier unfinished row of the same recipient that cannot go now blocks this one.
        blocked = exists().where(
            earlier.c.recipient == outbox.c.recipient,
            earlier.c.id < outbox.c.id,
            earlier.c.state.in_(UNFINISHED),
            ~_claimable(now, earlier),
        )
        candidates_query = (
            select(outbox.c.id, outbox.c.recipient)
            .where(_claimable(now), ~blocked)
            .order_by(outbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=outbox)
        )
        candidates = [(row.id, row.recipient) for row in await self._connection.execute(candidates_query)]
        chosen = await self._in_recipient_order(candidates)
        if not chosen:
            return []
        statement = (
            update(outbox)
            .where(outbox.c.id.in_(chosen))
            .values(
                state=OutboxState.SENDING.value,
                claimed_until=now + lease,
                claimed_by=by,
                attempts=outbox.c.attempts + 1,
            )
            .returning(*outbox.c)
        )
        rows = [_row(m) for m in (await self._connection.execute(statement)).mappings()]
        return sorted(rows, key=lambda row: row.id)

    async def take_back(self, *, by: str, now: datetime) -> int:
        """Rows an earlier life of sender `by` left `sending`: due again at once. How many.

        Only the restarted sender itself may do this without waiting for the lease: nobody else
        is sending them."""
        statement = (
            update(outbox)
            .where(outbox.c.state == OutboxState.SENDING.value, outbox.c.claimed_by == by)
            .values(state=OutboxState.PENDING.value, claimed_until=None, claimed_by=None, next_attempt_at=now)
            .returning(outbox.c.id)
        )
        return len((await self._connection.execute(statement)).all())

    async def renew(self, ids: Sequence[int], *, held_until: datetime, until: datetime) -> set[int]:
        """Extend the lease on claimed rows to `until`; which of `ids` were renewed.

        Only rows still `sending` under the claim that set `held_until` are renewed: a row whose
        lease passed and that another sender has claimed since carries that sender's
        `claimed_until`, and is left to it (compare-and-set on the lease end).
        """
        if not ids:
            return set()
        statement = (
            update(outbox)
            .where(
                outbox.c.id.in_(list(ids)),
                outbox.c.state == OutboxState.SENDING.value,
                outbox.c.claimed_until == held_until,
            )
            .values(claimed_until=until)
            .returning(outbox.c.id)
        )
        return {row.id for row in await self._connection.execute(statement)}

    async def _in_recipient_order(self, candidates: Sequence[tuple[int, str]]) -> list[int]:
        """Drop candidates whose recipient has an earlier unfinished row outside the candidates.

        That happens when another claimer holds the earlier row (skipped as locked): sending the
        later one now would overtake it.
        """
        if not candidates:
            return []
        candidate_ids = {row_id for row_id, _ in candidates}
        statement = (
            select(outbox.c.id, outbox.c.recipient)
            .where(
                outbox.c.recipient.in_({recipient for _, recipient in candidates}),
                outbox.c.state.in_(UNFINISHED),
                outbox.c.id <= max(candidate_ids),
            )
            .order_by(outbox.c.id)
        )
        chosen: list[int] = []
        blocked: set[str] = set()
        for row in await self._connection.execute(statement):
            if row.recipient in blocked:
                continue
            if row.id in candidate_ids:
                chosen.append(row.id)
            else:
                blocked.add(row.recipient)
        return chosen

    async def mark_sent(self, id: int, *, ts: str | None, channel: str | None, at: datetime) -> bool:
        """Record delivery and Slack's message ts; False if the row was already finished."""
        return await self._finish(
            id,
            state=OutboxState.SENT,
            values={"slack_ts": ts, "slack_channel": channel, "sent_at": at, "last_error": None},
        )

    async def mark_retry(self, id: int, *, next_attempt_at: datetime, error: str) -> bool:
        """Put the row back in the queue, not to be tried before `next_attempt_at`."""
        return await self._finish(
            id,
            state=OutboxState.PENDING,
            values={"next_attempt_at": next_attempt_at, "last_error": error},
        )

    async def mark_failed(self, id: int, *, error: str) -> bool:
        """Give up on the row for good (e.g. Slack answered channel_not_found)."""
        return await self._finish(id, state=OutboxState.FAILED, values={"last_error": error})

    async def requeue_refused(
        self, channel: str, *, run_ids: Sequence[str], codes: Sequence[str], now: datetime
    ) -> int:
        """Failed rows of `run_ids` to `channel` whose error ends with one of Slack's `codes` (and
        the updates that failed for want of their message) go back to pending, due now, in their
        old order (their ids). How many."""
        if not run_ids:
            return 0
        refused = or_(
            *(outbox.c.last_error.like(f"%{code}") for code in codes),
            outbox.c.last_error.like("%needs payload.target%"),
        )
        statement = (
            update(outbox)
            .where(
                outbox.c.recipient == channel,
                outbox.c.run_id.in_(run_ids),
                outbox.c.state == OutboxState.FAILED.value,
                refused,
            )
            .values(state=OutboxState.PENDING.value, attempts=0, next_attempt_at=now, last_error=None)
            .returning(outbox.c.id)
        )
        return len((await self._connection.execute(statement)).all())

    async def _finish(self, id: int, *, state: OutboxState, values: dict[str, Any]) -> bool:
        statement = (
            update(outbox)
            .where(outbox.c.id == id, outbox.c.state.in_(UNFINISHED))
            .values(state=state.value, claimed_until=None, **values)
            .returning(outbox.c.id)
        )
        return (await self._connection.execute(statement)).first() is not None

    async def pending(self, *, run_id: str | None = None, limit: int | None = None) -> list[OutboxRow]:
        """Rows not yet delivered (pending, or claimed and being sent), in id order."""
        statement = select(outbox).where(outbox.c.state.in_(UNFINISHED))
        if run_id is not None:
            statement = statement.where(outbox.c.run_id == run_id)
        statement = statement.order_by(outbox.c.id)
        if limit is not None:
            statement = statement.limit(limit)
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]

    async def for_run(self, run_id: str) -> list[OutboxRow]:
        statement = select(outbox).where(outbox.c.run_id == run_id).order_by(outbox.c.id)
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]

    async def counts(self) -> dict[OutboxState, int]:
        """How many rows are in each state (zero included)."""
        statement = select(outbox.c.state, func.count()).group_by(outbox.c.state)
        counts = dict.fromkeys(OutboxState, 0)
        for state, count in await self._connection.execute(statement):
            counts[OutboxState(state)] = int(count)
        return counts

    async def oldest_unfinished(self) -> datetime | None:
        """When the oldest row not yet delivered was queued, or None when none waits."""
        statement = select(func.min(outbox.c.created_at)).where(outbox.c.state.in_(UNFINISHED))
        value: datetime | None = (await self._connection.execute(statement)).scalar_one_or_none()
        return value

    async def next_due(self) -> datetime | None:
        """When the next row becomes claimable (a retry time or a lease end), or None if none waits."""
        statement = select(
            func.min(outbox.c.next_attempt_at).filter(outbox.c.state == OutboxState.PENDING.value),
            func.min(outbox.c.claimed_until).filter(outbox.c.state == OutboxState.SENDING.value),
        )
        row = (await self._connection.execute(statement)).one()
        times = [value for value in row if value is not None]
        return min(times) if times else None
