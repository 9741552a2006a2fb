"""Traffic shifts waiting for the actuator: the outbox's claim-and-lease, for the control plane.

A row is written in the transaction that decided the shift (`queue`). After that transaction
commits, a sender claims it (`claim`: `pending` -> `sending` until the lease runs out), calls the
actuator with no transaction open, and closes it in the transaction that feeds the answer back
to the engine (`finish`). If that transaction fails, the answer is written down on its own
(`answer`: `answered`), so the shift is never sent again and the answer is fed later. A sender
that dies between the call and either write leaves a `sending` row whose lease passes: it is sent
again under the same idempotency key, which the control plane uses to drop the duplicate.

Order: a run's shifts are handed out in id order, and a row only when every earlier unfinished
row of the same run is handed out in the same claim (a cohort's commands never overtake).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from store.sql import insert_returning
from store.tables import traffic_shifts


class ShiftState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    ANSWERED = "answered"
    DONE = "done"


UNFINISHED = (ShiftState.PENDING.value, ShiftState.SENDING.value, ShiftState.ANSWERED.value)


@dataclass(frozen=True, slots=True)
class ShiftRow:
    id: int
    run_id: str
    idempotency_key: str
    payload: dict[str, Any]
    state: str
    attempts: int
    claimed_until: datetime | None
    ok: bool | None
    detail: str | None
    created_at: datetime
    answered_at: datetime | None


def _row(mapping: Any) -> ShiftRow:
    ok = mapping["ok"]
    return ShiftRow(
        id=mapping["id"],
        run_id=mapping["run_id"],
        idempotency_key=mapping["idempotency_key"],
        payload=dict(mapping["payload"]),
        state=mapping["state"],
        attempts=mapping["attempts"],
        claimed_until=mapping["claimed_until"],
        ok=None if ok is None else bool(ok),
        detail=mapping["detail"],
        created_at=mapping["created_at"],
        answered_at=mapping["answered_at"],
    )


def _claimable(now: datetime, table: Any = traffic_shifts) -> ColumnElement[bool]:
    return or_(
        table.c.state == ShiftState.PENDING.value,
        table.c.state == ShiftState.ANSWERED.value,
        and_(table.c.state == ShiftState.SENDING.value, table.c.claimed_until <= now),
    )


class Shifts:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def queue(self, *, run_id: str, idempotency_key: str, payload: dict[str, Any], at: datetime) -> int:
        values = {
            "run_id": run_id,
            "idempotency_key": idempotency_key,
            "payload": payload,
            "state": ShiftState.PENDING.value,
            "attempts": 0,
            "created_at": at,
        }
        inserted = await insert_returning(self._connection, traffic_shifts, values, traffic_shifts.c.id)
        assert inserted is not None  # no unique key but the id: an insert always lands
        return int(inserted)

    async def get(self, id: int) -> ShiftRow | None:
        statement = select(traffic_shifts).where(traffic_shifts.c.id == id)
        mapping = (await self._connection.execute(statement)).mappings().first()
        return None if mapping is None else _row(mapping)

    async def for_run(self, run_id: str) -> list[ShiftRow]:
        statement = (
            select(traffic_shifts).where(traffic_shifts.c.run_id == run_id).order_by(traffic_shifts.c.id)
        )
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]

    async def claim(self, *, now: datetime, limit: int, lease: timedelta) -> list[ShiftRow]:
        """Hand out up to `limit` due rows in id order; pending and expired ones become `sending`.

        An `answered` row is handed out as it is (its answer waits to be fed, it is not sent)."""
        earlier = traffic_shifts.alias("earlier")
        blocked = exists().where(
            earlier.c.run_id == traffic_shifts.c.run_id,
            earlier.c.id < traffic_shifts.c.id,
            earlier.c.state.in_(UNFINISHED),
            ~_claimable(now, earlier),
        )
        query = (
            select(traffic_shifts.c.id)
            .where(_claimable(now), ~blocked)
            .order_by(traffic_shifts.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=traffic_shifts)
        )
        ids = [row.id for row in await self._connection.execute(query)]
        if not ids:
            return []
        to_send = (
            update(traffic_shifts)
            .where(traffic_shifts.c.id.in_(ids), traffic_shifts.c.state != ShiftState.ANSWERED.value)
            .values(
                state=ShiftState.SENDING.value,
                claimed_until=now + lease,
                attempts=traffic_shifts.c.attempts + 1,
            )
        )
        await self._connection.execute(to_send)
        statement = select(traffic_shifts).where(traffic_shifts.c.id.in_(ids)).order_by(traffic_shifts.c.id)
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]

    async def answer(
        self, id: int, *, held_until: datetime | None, ok: bool, detail: str, at: datetime
    ) -> bool:
        """Write the actuator's answer down without feeding it (the feeding transaction failed)."""
        return await self._set(
            id,
            held_until=held_until,
            values={"state": ShiftState.ANSWERED.value, "ok": int(ok), "detail": detail, "answered_at": at},
        )

    async def finish(
        self, id: int, *, held_until: datetime | None, ok: bool, detail: str, at: datetime
    ) -> bool:
        """Close the row in the transaction that fed its answer to the engine; False if not ours."""
        return await self._set(
            id,
            held_until=held_until,
            values={"state": ShiftState.DONE.value, "ok": int(ok), "detail": detail, "answered_at": at},
        )

    async def _set(self, id: int, *, held_until: datetime | None, values: dict[str, Any]) -> bool:
        # Only under the claim that sent it (`held_until` is that claim's lease), or, for an answered
        # row, as long as it is still answered: a sender whose lease passed has lost the row.
        if held_until is None:
            mine = traffic_shifts.c.state == ShiftState.ANSWERED.value
        else:
            mine = and_(
                traffic_shifts.c.state == ShiftState.SENDING.value,
                traffic_shifts.c.claimed_until == held_until,
            )
        statement = update(traffic_shifts).where(traffic_shifts.c.id == id, mine).values(**values)
        result = await self._connection.execute(statement)
        return bool(result.rowcount)

    async def due(self, *, now: datetime) -> bool:
        """Whether any row could be claimed now (the sender's loop sleeps otherwise)."""
        statement = select(traffic_shifts.c.id).where(_claimable(now)).limit(1)
        return (await self._connection.execute(statement)).first() is not None
