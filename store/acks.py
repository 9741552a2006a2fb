"""Acknowledgements: a user confirming they have seen one packet version; once per user and version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from store.sql import insert_unless_exists
from store.tables import acks


@dataclass(frozen=True, slots=True)
class AckRow:
    run_id: str
    version: int
    user: str
    at: datetime


def _row(mapping: Any) -> AckRow:
    return AckRow(
        run_id=mapping["run_id"], version=mapping["version"], user=mapping["user_id"], at=mapping["at"]
    )


class Acks:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, *, run_id: str, version: int, user: str, at: datetime) -> bool:
        """Record the acknowledgement; False when this user already acknowledged this version."""
        values = {"run_id": run_id, "version": version, "user_id": user, "at": at}
        return await insert_unless_exists(self._connection, acks, values)

    async def get(self, run_id: str, version: int, user: str) -> AckRow | None:
        statement = select(acks).where(
            acks.c.run_id == run_id, acks.c.version == version, acks.c.user_id == user
        )
        mapping = (await self._connection.execute(statement)).mappings().first()
        return None if mapping is None else _row(mapping)

    async def for_version(self, run_id: str, version: int) -> list[AckRow]:
        statement = (
            select(acks)
            .where(acks.c.run_id == run_id, acks.c.version == version)
            .order_by(acks.c.at, acks.c.user_id)
        )
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]

    async def for_run(self, run_id: str) -> list[AckRow]:
        statement = (
            select(acks).where(acks.c.run_id == run_id).order_by(acks.c.version, acks.c.at, acks.c.user_id)
        )
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]
