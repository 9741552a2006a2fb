"""Checkpoint states: a projection of the run's progress, one row per (run, checkpoint).

The engine's `RunProgress` (on the run row) is the truth; this table exists so that questions
asked across runs ("what does this user own right now?") are one indexed query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from store.runs import TERMINAL_STATES
from store.sql import upsert
from store.tables import checkpoints, runs


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    run_id: str
    checkpoint: str
    state: str
    updated_at: datetime
    owner_role: str | None = None
    owner_user: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    detail: dict[str, Any] | None = None


def _row(mapping: Any) -> CheckpointRow:
    return CheckpointRow(
        run_id=mapping["run_id"],
        checkpoint=mapping["checkpoint"],
        state=mapping["state"],
        updated_at=mapping["updated_at"],
        owner_role=mapping["owner_role"],
        owner_user=mapping["owner_user"],
        started_at=mapping["started_at"],
        completed_at=mapping["completed_at"],
        detail=None if mapping["detail"] is None else dict(mapping["detail"]),
    )


class Checkpoints:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def put(self, row: CheckpointRow) -> None:
        """Insert or overwrite the projection of one checkpoint."""
        values = {
            "run_id": row.run_id,
            "checkpoint": row.checkpoint,
            "state": row.state,
            "owner_role": row.owner_role,
            "owner_user": row.owner_user,
            "started_at": row.started_at,
            "completed_at": row.completed_at,
            "detail": row.detail,
            "updated_at": row.updated_at,
        }
        await upsert(self._connection, checkpoints, values, key=("run_id", "checkpoint"))

    async def get(self, run_id: str, checkpoint: str) -> CheckpointRow | None:
        statement = select(checkpoints).where(
            checkpoints.c.run_id == run_id, checkpoints.c.checkpoint == checkpoint
        )
        mapping = (await self._connection.execute(statement)).mappings().first()
        return None if mapping is None else _row(mapping)

    async def for_run(self, run_id: str) -> list[CheckpointRow]:
        """All checkpoints of the run, by id (timeline order lives in the packet)."""
        statement = (
            select(checkpoints).where(checkpoints.c.run_id == run_id).order_by(checkpoints.c.checkpoint)
        )
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]

    async def owned_by(self, user: str) -> list[CheckpointRow]:
        """Checkpoints `user` owns on runs still active."""
        statement = (
            select(checkpoints)
            .join(runs, runs.c.run_id == checkpoints.c.run_id)
            .where(checkpoints.c.owner_user == user, runs.c.state.not_in(TERMINAL_STATES))
            .order_by(checkpoints.c.run_id, checkpoints.c.checkpoint)
        )
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]
