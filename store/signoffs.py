"""Sign-offs: a named person approving one exact plan revision as one role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from store.sql import insert_unless_exists
from store.tables import signoffs


@dataclass(frozen=True, slots=True)
class SignoffRow:
    id: int
    revision: str
    role: str
    user: str
    at: datetime


def _row(mapping: Any) -> SignoffRow:
    return SignoffRow(
        id=mapping["id"],
        revision=mapping["revision"],
        role=mapping["role"],
        user=mapping["user_id"],
        at=mapping["at"],
    )


class Signoffs:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, *, revision: str, role: str, user: str, at: datetime) -> bool:
        """Record a sign-off; False when this user already signed this revision as this role."""
        values = {"revision": revision, "role": role, "user_id": user, "at": at}
        return await insert_unless_exists(self._connection, signoffs, values)

    async def for_revision(self, revision: str) -> list[SignoffRow]:
        """Every sign-off of `revision`, in the order they were given."""
        statement = select(signoffs).where(signoffs.c.revision == revision).order_by(signoffs.c.id)
        result = await self._connection.execute(statement)
        return [_row(m) for m in result.mappings()]
