"""Approved change packages, one row per revision; a changed plan is a new row, never an edit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from store.sql import insert_unless_exists
from store.tables import plans


@dataclass(frozen=True, slots=True)
class PlanRow:
    revision: str
    plan_id: str
    # The plan as submitted (YAML text); its revision is the hash of its canonical JSON form.
    content: str
    # Where the text came from (a file name), for messages that point at the plan.
    source: str
    created_at: datetime


def _row(mapping: Any) -> PlanRow:
    return PlanRow(
        revision=mapping["revision"],
        plan_id=mapping["plan_id"],
        content=mapping["content"],
        source=mapping["source"],
        created_at=mapping["created_at"],
    )


class Plans:
    def __init__(self, connection: AsyncConnection, *, known: dict[str, PlanRow] | None = None) -> None:
        self._connection = connection
        # Revisions already read, shared by the unit of work's transactions: a committed revision's
        # row is never edited, so every tick need not read the plan text again.
        self._known = {} if known is None else known
        # Revisions this transaction added: not committed yet, so not for the shared cache.
        self._added: set[str] = set()

    async def add(
        self, *, revision: str, plan_id: str, content: str, at: datetime, source: str = "<plan>"
    ) -> bool:
        """Store a revision; False when it is already stored (the first text is kept)."""
        values = {
            "revision": revision,
            "plan_id": plan_id,
            "content": content,
            "source": source,
            "created_at": at,
        }
        added = await insert_unless_exists(self._connection, plans, values)
        if added:
            self._added.add(revision)
        return added

    async def get(self, revision: str) -> PlanRow | None:
        if revision in self._known:
            return self._known[revision]
        result = await self._connection.execute(select(plans).where(plans.c.revision == revision))
        mapping = result.mappings().first()
        if mapping is None:
            return None
        row = _row(mapping)
        if revision not in self._added:
            self._known[revision] = row
        return row

    async def latest(self, plan_id: str) -> PlanRow | None:
        """The revision of `plan_id` stored last."""
        rows = await self.for_plan(plan_id)
        return rows[-1] if rows else None

    async def for_plan(self, plan_id: str) -> list[PlanRow]:
        """Every stored revision of `plan_id`, oldest first."""
        statement = (
            select(plans).where(plans.c.plan_id == plan_id).order_by(plans.c.created_at, plans.c.revision)
        )
        result = await self._connection.execute(statement)
        return [_row(m) for m in result.mappings()]
