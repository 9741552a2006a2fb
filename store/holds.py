"""Holds: stops only a human with a named role can release, as a queryable projection.

The engine's hold record (`runs.progress`) is the truth; a row here has the same id and the same
states (`packets.engine.progress.HoldState`: open, released, withdrawn). Releasing is a
compare-and-set (`UPDATE ... WHERE state = 'open'`): of any number of
simultaneous clicks exactly one wins, and the row then says who released it, as which role, and
when. The partial releases of a `mode: all` hold live only in the engine's record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from packets.engine.progress import HoldState
from store.sql import insert_unless_exists
from store.tables import holds


@dataclass(frozen=True, slots=True)
class HoldRow:
    run_id: str
    hold_id: str
    checkpoint: str | None
    source: str
    reason: str
    release_by: tuple[str, ...]
    mode: str
    state: str
    packet_version: int | None
    opened_at: datetime
    opened_by: str | None
    released_at: datetime | None
    released_by: str | None
    released_as: str | None
    release_note: str | None


def _row(mapping: Any) -> HoldRow:
    return HoldRow(
        run_id=mapping["run_id"],
        hold_id=mapping["hold_id"],
        checkpoint=mapping["checkpoint"],
        source=mapping["source"],
        reason=mapping["reason"],
        release_by=tuple(mapping["release_by"]),
        mode=mapping["mode"],
        state=mapping["state"],
        packet_version=mapping["packet_version"],
        opened_at=mapping["opened_at"],
        opened_by=mapping["opened_by"],
        released_at=mapping["released_at"],
        released_by=mapping["released_by"],
        released_as=mapping["released_as"],
        release_note=mapping["release_note"],
    )


class Holds:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def open(
        self,
        *,
        run_id: str,
        hold_id: str,
        source: str,
        reason: str,
        release_by: tuple[str, ...] | list[str],
        at: datetime,
        checkpoint: str | None = None,
        mode: str = "any",
        packet_version: int | None = None,
        opened_by: str | None = None,
    ) -> bool:
        """Open a hold; False when a hold with this id already exists on the run (in any state)."""
        values = {
            "run_id": run_id,
            "hold_id": hold_id,
            "checkpoint": checkpoint,
            "source": source,
            "reason": reason,
            "release_by": list(release_by),
            "mode": mode,
            "state": HoldState.OPEN.value,
            "packet_version": packet_version,
            "opened_at": at,
            "opened_by": opened_by,
        }
        return await insert_unless_exists(self._connection, holds, values)

    async def get(self, run_id: str, hold_id: str) -> HoldRow | None:
        statement = select(holds).where(holds.c.run_id == run_id, holds.c.hold_id == hold_id)
        mapping = (await self._connection.execute(statement)).mappings().first()
        return None if mapping is None else _row(mapping)

    async def for_run(self, run_id: str, *, state: HoldState | str | None = None) -> list[HoldRow]:
        """The run's holds in the order they were opened, optionally only those in `state`."""
        statement = select(holds).where(holds.c.run_id == run_id)
        if state is not None:
            statement = statement.where(holds.c.state == str(state))
        statement = statement.order_by(holds.c.opened_at, holds.c.hold_id)
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]

    async def release_cas(
        self,
        *,
        run_id: str,
        hold_id: str,
        released_by: str,
        released_as: str,
        at: datetime,
        note: str | None = None,
        expected_state: HoldState | str = HoldState.OPEN,
    ) -> bool:
        """Release the hold if it is still in `expected_state`.

        True for exactly one caller; every other gets False and can read the winner with `get`.
        """
        return await self._finish(
            run_id=run_id,
            hold_id=hold_id,
            expected_state=str(expected_state),
            values={
                "state": HoldState.RELEASED.value,
                "released_at": at,
                "released_by": released_by,
                "released_as": released_as,
                "release_note": note,
            },
        )

    async def withdraw_cas(
        self,
        *,
        run_id: str,
        hold_id: str,
        by: str,
        at: datetime,
        note: str | None = None,
        expected_state: HoldState | str = HoldState.OPEN,
    ) -> bool:
        """Withdraw the hold without releasing it; same compare-and-set as `release_cas`."""
        return await self._finish(
            run_id=run_id,
            hold_id=hold_id,
            expected_state=str(expected_state),
            values={
                "state": HoldState.WITHDRAWN.value,
                "released_at": at,
                "released_by": by,
                "release_note": note,
            },
        )

    async def _finish(
        self,
        *,
        run_id: str,
        hold_id: str,
        expected_state: str,
        values: dict[str, Any],
    ) -> bool:
        statement = (
            update(holds)
            .where(
                holds.c.run_id == run_id,
                holds.c.hold_id == hold_id,
                holds.c.state == expected_state,
            )
            .values(**values)
            .returning(holds.c.hold_id)
        )
        return (await self._connection.execute(statement)).first() is not None
