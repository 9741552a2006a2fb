"""Runs: one execution of one plan revision in one war-room channel.

`progress` is the stage engine's `RunProgress.as_json()`, kept opaque here; `state` mirrors the
engine's state so that queries ("active runs in this channel") need not parse it. Every write goes
through `save`, a compare-and-set on `lock_version`: a writer that read an older row gets
`StaleWrite` instead of silently overwriting someone else's change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from store.errors import RunExists, RunNotFound, StaleWrite
from store.sql import insert_unless_exists
from store.tables import runs

# Engine states after which a run takes no more actions.
TERMINAL_STATES = frozenset({"completed", "rolled_back", "aborted", "superseded"})


@dataclass(frozen=True, slots=True)
class RunRow:
    run_id: str
    plan_id: str
    plan_revision: str
    channel: str
    state: str
    progress: dict[str, Any]
    acting: dict[str, str]
    authoritative_version: int | None
    created_at: datetime
    updated_at: datetime
    lock_version: int

    @property
    def active(self) -> bool:
        return self.state not in TERMINAL_STATES


def _row(mapping: Any) -> RunRow:
    return RunRow(
        run_id=mapping["run_id"],
        plan_id=mapping["plan_id"],
        plan_revision=mapping["plan_revision"],
        channel=mapping["channel"],
        state=mapping["state"],
        progress=dict(mapping["progress"]),
        acting=dict(mapping["acting"]),
        authoritative_version=mapping["authoritative_version"],
        created_at=mapping["created_at"],
        updated_at=mapping["updated_at"],
        lock_version=mapping["lock_version"],
    )


class Runs:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        # The runs this transaction locked, as last read or saved: nobody else may change a locked
        # run until the transaction ends, so reading it again would only read this copy back.
        self._locked: dict[str, RunRow] = {}
        # Saves held back until `flush` (`defer_saves`): run id -> (row to write, lock version read).
        self._deferred: dict[str, tuple[RunRow, int]] | None = None

    async def create(
        self,
        *,
        run_id: str,
        plan_id: str,
        plan_revision: str,
        channel: str,
        state: str,
        progress: dict[str, Any],
        acting: dict[str, str],
        at: datetime,
        authoritative_version: int | None = None,
    ) -> RunRow:
        """Insert a new run at lock_version 0; `RunExists` if the id is taken."""
        values = {
            "run_id": run_id,
            "plan_id": plan_id,
            "plan_revision": plan_revision,
            "channel": channel,
            "state": state,
            "progress": progress,
            "acting": acting,
            "authoritative_version": authoritative_version,
            "created_at": at,
            "updated_at": at,
            "lock_version": 0,
        }
        if not await insert_unless_exists(self._connection, runs, values):
            raise RunExists(run_id)
        return await self.require(run_id)

    async def get(self, run_id: str) -> RunRow | None:
        if run_id in self._locked:
            return self._locked[run_id]
        result = await self._connection.execute(select(runs).where(runs.c.run_id == run_id))
        mapping = result.mappings().first()
        return None if mapping is None else _row(mapping)

    async def get_many(self, run_ids: Sequence[str]) -> dict[str, RunRow]:
        """`get` for several runs in one statement (none for runs this transaction locked)."""
        found = {run: self._locked[run] for run in run_ids if run in self._locked}
        rest = sorted({run for run in run_ids if run not in found})
        if rest:
            result = await self._connection.execute(select(runs).where(runs.c.run_id.in_(rest)))
            found.update({m["run_id"]: _row(m) for m in result.mappings()})
        return found

    async def require(self, run_id: str) -> RunRow:
        row = await self.get(run_id)
        if row is None:
            raise RunNotFound(run_id)
        return row

    async def lock(self, run_id: str) -> RunRow:
        """Read the run and hold its row lock until the transaction ends (PostgreSQL).

        `FOR NO KEY UPDATE`: it queues every other use case on the run, but not inserts that only
        reference the run (their foreign-key check takes a KEY SHARE lock, which it allows). SQLite
        has no row locks; there the unit of work already holds the database's one write lock.
        """
        found = await self.lock_many([run_id])
        if run_id not in found:
            raise RunNotFound(run_id)
        return found[run_id]

    async def lock_many(self, run_ids: Sequence[str]) -> dict[str, RunRow]:
        """`lock` for several runs in one statement, in run id order (so two lockers never
        deadlock); the runs that exist, by id."""
        statement = (
            select(runs)
            .where(runs.c.run_id.in_(sorted(set(run_ids))))
            .order_by(runs.c.run_id)
            .with_for_update(key_share=True)
        )
        found = {m["run_id"]: _row(m) for m in (await self._connection.execute(statement)).mappings()}
        self._locked.update(found)
        return found

    def defer_saves(self) -> None:
        """Hold every later `save` of a locked run back until `flush`, which writes them in one
        statement. Only for a transaction that locked those runs: nobody else can have saved them
        since, so the compare-and-set cannot fail and the saved row is known without reading it."""
        self._deferred = {}

    async def flush(self) -> None:
        """Write the saves `defer_saves` held back; StaleWrite if any compare-and-set failed."""
        deferred, self._deferred = self._deferred or {}, None
        if not deferred:
            return
        statement = (
            update(runs)
            .where(runs.c.run_id == bindparam("key"), runs.c.lock_version == bindparam("expected"))
            .values(
                state=bindparam("state"),
                progress=bindparam("progress"),
                acting=bindparam("acting"),
                authoritative_version=bindparam("version"),
                updated_at=bindparam("at"),
                lock_version=bindparam("next"),
            )
        )
        params = [
            {
                "key": row.run_id,
                "expected": expected,
                "state": row.state,
                "progress": row.progress,
                "acting": row.acting,
                "version": row.authoritative_version,
                "at": row.updated_at,
                "next": row.lock_version,
            }
            for row, expected in deferred.values()
        ]
        result = await self._connection.execute(statement, params)
        if self._connection.dialect.supports_sane_multi_rowcount and result.rowcount != len(params):
            raise StaleWrite(", ".join(sorted(deferred)), -1)

    async def active(self) -> list[RunRow]:
        """Runs not yet completed, rolled back or aborted, oldest first."""
        statement = (
            select(runs)
            .where(runs.c.state.not_in(TERMINAL_STATES))
            .order_by(runs.c.created_at, runs.c.run_id)
        )
        result = await self._connection.execute(statement)
        return [_row(m) for m in result.mappings()]

    async def active_of_plan(self, plan_id: str) -> list[RunRow]:
        """The active runs of one plan (any revision), oldest first: whom a pushed alert concerns."""
        statement = (
            select(runs)
            .where(runs.c.plan_id == plan_id, runs.c.state.not_in(TERMINAL_STATES))
            .order_by(runs.c.created_at, runs.c.run_id)
        )
        result = await self._connection.execute(statement)
        return [_row(m) for m in result.mappings()]

    async def of_revision(self, revision: str) -> list[RunRow]:
        """Every run of one plan revision, oldest first."""
        statement = select(runs).where(runs.c.plan_revision == revision).order_by(runs.c.created_at)
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]

    async def active_in_channel(self, channel: str) -> RunRow | None:
        """The newest active run in `channel`, if any."""
        statement = (
            select(runs)
            .where(runs.c.channel == channel, runs.c.state.not_in(TERMINAL_STATES))
            .order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
            .limit(1)
        )
        result = await self._connection.execute(statement)
        mapping = result.mappings().first()
        return None if mapping is None else _row(mapping)

    async def newest_in_channel(self, channel: str) -> RunRow | None:
        """The newest run in `channel`, ended or not."""
        statement = (
            select(runs)
            .where(runs.c.channel == channel)
            .order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
            .limit(1)
        )
        mapping = (await self._connection.execute(statement)).mappings().first()
        return None if mapping is None else _row(mapping)

    async def save(
        self, row: RunRow, *, expected_lock_version: int | None = None, at: datetime | None = None
    ) -> RunRow:
        """Write the run's mutable fields if nobody saved since `expected_lock_version`.

        `expected_lock_version` defaults to the version `row` was read at, `at` (the new
        `updated_at`) to `row.updated_at`. Returns the row as stored, lock_version advanced by one;
        raises `StaleWrite` when the compare fails.
        """
        expected = row.lock_version if expected_lock_version is None else expected_lock_version
        if self._deferred is not None and row.run_id in self._locked:
            held = self._locked[row.run_id]
            if held.lock_version != expected:
                raise StaleWrite(row.run_id, expected)
            saved = replace(
                row,
                updated_at=row.updated_at if at is None else at,
                lock_version=expected + 1,
            )
            first_read = self._deferred.get(row.run_id, (saved, expected))[1]
            self._deferred[row.run_id] = (saved, first_read)
            self._locked[row.run_id] = saved
            return saved
        statement = (
            update(runs)
            .where(runs.c.run_id == row.run_id, runs.c.lock_version == expected)
            .values(
                state=row.state,
                progress=row.progress,
                acting=row.acting,
                authoritative_version=row.authoritative_version,
                updated_at=row.updated_at if at is None else at,
                lock_version=runs.c.lock_version + 1,
            )
            .returning(*runs.c)
        )
        result = await self._connection.execute(statement)
        mapping = result.mappings().first()
        if mapping is None:
            raise StaleWrite(row.run_id, expected)
        saved = _row(mapping)
        if row.run_id in self._locked:
            self._locked[row.run_id] = saved
        return saved
