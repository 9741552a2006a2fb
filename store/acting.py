"""Acting-user changes: the history of who acted for each role. The current map is `runs.acting`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from store.tables import acting_changes


@dataclass(frozen=True, slots=True)
class ActingChange:
    id: int
    run_id: str
    role: str
    from_user: str | None
    to_user: str
    by_user: str
    reason: str | None
    at: datetime


def _row(mapping: Any) -> ActingChange:
    return ActingChange(
        id=mapping["id"],
        run_id=mapping["run_id"],
        role=mapping["role"],
        from_user=mapping["from_user"],
        to_user=mapping["to_user"],
        by_user=mapping["by_user"],
        reason=mapping["reason"],
        at=mapping["at"],
    )


class ActingChanges:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def record(
        self,
        *,
        run_id: str,
        role: str,
        from_user: str | None,
        to_user: str,
        by_user: str,
        at: datetime,
        reason: str | None = None,
    ) -> ActingChange:
        statement = (
            insert(acting_changes)
            .values(
                run_id=run_id,
                role=role,
                from_user=from_user,
                to_user=to_user,
                by_user=by_user,
                reason=reason,
                at=at,
            )
            .returning(*acting_changes.c)
        )
        return _row((await self._connection.execute(statement)).mappings().one())

    async def for_run(self, run_id: str, *, role: str | None = None) -> list[ActingChange]:
        """The run's changes in the order made, optionally for one role."""
        statement = select(acting_changes).where(acting_changes.c.run_id == run_id)
        if role is not None:
            statement = statement.where(acting_changes.c.role == role)
        statement = statement.order_by(acting_changes.c.id)
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]
