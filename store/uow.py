"""The unit of work: one database transaction per use case.

    async with uow.transaction(run_id=run_id) as tx:
        run = await tx.runs.require(run_id)
        ...                                   # state, tx.ledger.append(...), tx.outbox.enqueue(...)

Everything done through `tx` commits together when the block exits cleanly, and nothing of it
survives an exception. With `run_id` the run is locked for the whole transaction, so use cases on
one run never interleave:

- PostgreSQL: `SELECT ... FOR NO KEY UPDATE` on the run row (see `Runs.lock`); other runs
  proceed in parallel.
- SQLite: one writer at a time. A process-wide lock per database file (store/writer_lock.py)
  queues this process's writers without busy-waiting, an `urgent` one ahead of the others, and
  `BEGIN IMMEDIATE` (see store.db) takes SQLite's write lock at once, which also keeps out writers
  in other processes. Every write transaction is serialised this way, with or without `run_id`:
  SQLite has only the one write lock anyway.

Opening a transaction inside another one of the same task that holds the lock it needs (any
write transaction on SQLite, the same run on PostgreSQL) raises `NestedTransaction` rather than
waiting on itself forever.

`read_only=True` gives a transaction for queries that takes no lock at all (PostgreSQL makes it
READ ONLY; SQLite reads a WAL snapshot with `query_only` on): status views and `ledger verify` run
beside a busy bot. `snapshot=True` (read-only only) makes every statement of the transaction see
the same committed state: PostgreSQL runs it REPEATABLE READ (a read-only transaction there never
fails to serialize); SQLite's deferred read transaction already reads one WAL snapshot. `ledger
verify` needs it: rows and head read at different moments beside an append look like a cut chain.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.acks import Acks
from store.db import SQLITE_BEGIN, display_url
from store.errors import NestedTransaction
from store.gate_results import GateResults
from store.holds import Holds
from store.inbox import CURRENT, ClaimLost, Inbox
from store.ledger import Ledger
from store.outbox import Outbox
from store.pace import Pace
from store.packets import Packets
from store.plans import PlanRow, Plans
from store.runs import Runs
from store.shifts import Shifts
from store.writer_lock import WriterLock

# How long a task being stopped may take to end the transaction it is in before it is cancelled
# anyway (`UnitOfWork.cancel_between_transactions`): a transaction is milliseconds; this bounds a
# stuck one.
TRANSACTION_GRACE_S = 2.0


class Transaction:
    """The repositories of one open transaction. Valid only inside its `async with` block."""

    def __init__(
        self, connection: AsyncConnection, *, run_id: str | None, plan_rows: dict[str, PlanRow] | None = None
    ) -> None:
        self.run_id = run_id
        self.plans = Plans(connection, known=plan_rows)
        self.runs = Runs(connection)
        self.packets = Packets(connection)
        self.holds = Holds(connection)
        self.gate_results = GateResults(connection)
        self.acks = Acks(connection)
        self.ledger = Ledger(connection)
        self.outbox = Outbox(connection)
        self.shifts = Shifts(connection)
        self.inbox = Inbox(connection)
        self.pace = Pace(connection)


# asyncio locks belong to one event loop; a second loop (a CLI run in a thread) gets its own and
# falls back on SQLite's file lock, which BEGIN IMMEDIATE takes anyway.
_writer_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, WriterLock]] = (
    weakref.WeakKeyDictionary()
)


# Locks the current task holds through open transactions. Opening a second transaction that needs
# one of them would wait on ourselves forever; it raises NestedTransaction instead.
_held_locks: ContextVar[frozenset[str]] = ContextVar("cutover_store_held_locks", default=frozenset())


@asynccontextmanager
async def _holding(lock: str | None) -> AsyncIterator[None]:
    if lock is None:
        yield
        return
    held = _held_locks.get()
    if lock in held:
        raise NestedTransaction(lock)
    token = _held_locks.set(held | {lock})
    try:
        yield
    finally:
        _held_locks.reset(token)


def _writer_lock(database: str) -> WriterLock:
    locks = _writer_locks.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(database, WriterLock())


def _sqlite_database_key(url: URL, engine: AsyncEngine) -> tuple[str, bool]:
    """A key naming the database file, and whether the database lives in one shared connection."""
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        # Every checkout shares one connection (StaticPool): even readers must take turns.
        return f"memory:{id(engine)}", True
    if database.startswith("file:"):
        return database, False
    return str(Path(database).resolve()), False


class UnitOfWork:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        # Plan revisions read so far: a revision's row never changes once committed (store.plans).
        self._plan_rows: dict[str, PlanRow] = {}
        # Tasks with a connection in hand, and how many (a transaction may open inside another).
        self._connected: dict[asyncio.Task[object], int] = {}
        self._database_key, self._shared_connection = (
            _sqlite_database_key(engine.url, engine) if self._sqlite else ("", False)
        )

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self._engine.dialect.name

    @asynccontextmanager
    async def transaction(
        self,
        run_id: str | None = None,
        *,
        read_only: bool = False,
        snapshot: bool = False,
        runs: Sequence[str] = (),
        urgent: bool = False,
    ) -> AsyncIterator[Transaction]:
        """Open one transaction; with `run_id`, lock that run (`RunNotFound` if it does not exist);
        with `runs`, lock those that exist, in run id order (`tx.runs.get` answers for them).

        `urgent`: on SQLite, go before the writers not urgent already waiting for the write lock
        (store/writer_lock.py); PostgreSQL has no such queue."""
        if read_only and (run_id is not None or runs):
            raise ValueError("a read-only transaction takes no run lock; drop run_id or read_only")
        if snapshot and not read_only:
            raise ValueError("a snapshot is for a read-only transaction; add read_only")
        if self._sqlite and (not read_only or self._shared_connection):
            writer = f"the SQLite write lock of {self._database_key}"
            async with (
                _holding(writer),
                _writer_lock(self._database_key).held(urgent=urgent),
                self._open(run_id, read_only, snapshot, runs) as tx,
            ):
                yield tx
            return
        lock = None if run_id is None else f"the lock of run {run_id!r} in {display_url(self._engine.url)}"
        async with _holding(lock), self._open(run_id, read_only, snapshot, runs) as tx:
            yield tx

    @asynccontextmanager
    async def _open(
        self, run_id: str | None, read_only: bool, snapshot: bool = False, runs: Sequence[str] = ()
    ) -> AsyncIterator[Transaction]:
        task = asyncio.current_task()
        if task is not None:
            self._connected[task] = self._connected.get(task, 0) + 1
        try:
            async with self._transaction_on_a_connection(run_id, read_only, snapshot, runs) as tx:
                yield tx
        finally:
            if task is not None:
                left = self._connected.pop(task) - 1
                if left:
                    self._connected[task] = left

    async def cancel_between_transactions(
        self, tasks: Collection[asyncio.Task[Any]], *, within: float = TRANSACTION_GRACE_S
    ) -> None:
        """Cancel `tasks`, each at a moment it has no connection in hand, waiting up to `within`
        seconds for those in a transaction to end it; then cancel what is left anyway.

        Cancelled in the middle of a statement, SQLAlchemy gives up the connection, but SQLite may
        keep the statement, and with it the write lock, past the connection's close: every later
        writer, in this process or another, then waits out the busy timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        # Each is cancelled once: what it does on its way out is its own (a release, say).
        uncut = {t for t in tasks if not t.done()}
        while uncut and loop.time() < deadline:
            for task in [t for t in uncut if t not in self._connected]:
                task.cancel()
                uncut.discard(task)
            if uncut:
                await asyncio.wait(uncut, timeout=0.02)
                uncut = {t for t in uncut if not t.done()}
        for task in uncut:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @asynccontextmanager
    async def _transaction_on_a_connection(
        self, run_id: str | None, read_only: bool, snapshot: bool, runs: Sequence[str]
    ) -> AsyncIterator[Transaction]:
        async with self._engine.connect() as connection:
            if read_only and self._sqlite:
                await connection.execution_options(**{SQLITE_BEGIN: "DEFERRED"})
            elif read_only and snapshot:
                await connection.execution_options(
                    postgresql_readonly=True, isolation_level="REPEATABLE READ"
                )
            elif read_only:
                await connection.execution_options(postgresql_readonly=True)
            # The inbox row this task processes (if any) is marked done by its first write
            # transaction to commit, in that transaction: the use case's work and "processed"
            # commit together, so a request is never processed twice (see store.inbox).
            claim = None if read_only else CURRENT.get()
            if claim is not None and claim.done:
                claim = None
            try:
                async with connection.begin():
                    if read_only and self._sqlite:
                        await connection.exec_driver_sql("PRAGMA query_only = ON")
                    tx = Transaction(connection, run_id=run_id, plan_rows=self._plan_rows)
                    if run_id is not None:
                        await tx.runs.lock(run_id)
                    if runs:
                        await tx.runs.lock_many(runs)
                    yield tx
                    if claim is not None and not await Inbox(connection).complete(
                        claim.id, by=claim.by, at=claim.at
                    ):
                        raise ClaimLost(claim.id)
                if claim is not None:
                    claim.done = True
            finally:
                if read_only and self._sqlite:
                    await _end_query_only(connection)

    async def dispose(self) -> None:
        await self._engine.dispose()


async def _end_query_only(connection: AsyncConnection) -> None:
    # query_only outlives the transaction; the pooled connection must not keep it.
    try:
        await connection.exec_driver_sql("PRAGMA query_only = OFF")
        await connection.rollback()
    except Exception:
        # A connection that cannot be reset is thrown away rather than handed out again.
        await connection.invalidate()
