"""The database: engines for SQLite (embedded default) and PostgreSQL, and schema migrations.

`make_engine(url)` is the one place engines are built. For SQLite it takes transaction control
away from the sqlite3 driver (which would otherwise skip BEGIN before SELECTs and DDL) and has
SQLAlchemy emit `BEGIN IMMEDIATE` itself, so a write transaction holds SQLite's write lock from its
first statement instead of failing half-way with "database is locked"; WAL lets readers continue
meanwhile. See SQLAlchemy's "Transactions with SQLite and the sqlite3 driver".

`upgrade(url)` applies the Alembic migrations shipped inside this package; it is idempotent, so
the bot can call it at every start.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///cutover.db"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# How long a SQLite connection waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000

# Any fixed number: replicas starting together queue on this lock instead of racing to CREATE TABLE.
MIGRATION_LOCK_KEY = 0x6375746F766572  # "cutover"

# Execution option naming the BEGIN a SQLite transaction starts with (DEFERRED for readers).
SQLITE_BEGIN = "cutover_sqlite_begin"
_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE"})


def database_url(explicit: str | None = None, *, environ: Mapping[str, str] | None = None) -> str:
    """The URL to use: the explicit one, else DATABASE_URL, else a SQLite file in the cwd."""
    env = os.environ if environ is None else environ
    return explicit or env.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def display_url(url: str | URL) -> str:
    """The URL with any password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str | URL, **engine_kwargs: Any) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database not in (None, "", ":memory:"):
            # Readers run beside the one writer in WAL mode; 50 concurrent slash commands must
            # not wait 30 s for a pooled connection.
            engine_kwargs.setdefault("pool_size", 10)
            engine_kwargs.setdefault("max_overflow", 40)
        engine = create_async_engine(parsed, **engine_kwargs)
        _take_over_sqlite_transactions(engine)
        return engine
    engine_kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(parsed, **engine_kwargs)


def _take_over_sqlite_transactions(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Stop the driver from issuing its own BEGIN; `_on_begin` below issues ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            _try_wal(dbapi_connection)
            # In WAL mode NORMAL survives a crashed or killed process (only a power cut can lose
            # the last commits) and saves an fsync per transaction: the outbox marks every
            # message sent in its own transaction.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
        if mode not in _BEGIN_MODES:
            raise ValueError(f"unknown SQLite BEGIN mode {mode!r}")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _try_wal(dbapi_connection: Any) -> bool:
    """Switch the database file to WAL if it is not already; False if another connection is busy.

    WAL is a property of the file, so one successful switch serves every later connection. The
    switch needs an exclusive lock and SQLite answers "database is locked" at once, without
    waiting out the busy timeout, while another connection is mid-transaction (deadlock
    avoidance). That happens when replicas open a new database together; `upgrade_engine` then
    retries without blocking the event loop.
    """
    # The cursor is closed before returning: a statement left unfinished keeps a read lock.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode")
        # An in-memory database has no file to switch, and no other connection to wait for.
        if str(cursor.fetchall()[0][0]).lower() in ("wal", "memory"):
            return True
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            # SQLite answers with the mode now in force, the old one if it could not switch.
            return str(cursor.fetchall()[0][0]).lower() == "wal"
        except Exception as error:  # the driver's OperationalError, wrapped by the async adapter
            if "locked" in str(error) or "busy" in str(error):
                return False
            raise
    finally:
        cursor.close()


async def _ensure_wal(engine: AsyncEngine) -> None:
    """Make sure a SQLite database file is in WAL mode, waiting (asynchronously) for a busy peer."""
    deadline = SQLITE_BUSY_TIMEOUT_MS / 1000
    waited = 0.0
    delay = 0.01
    while True:
        async with engine.connect() as connection:
            # No statement goes through SQLAlchemy here, so no BEGIN is issued either.
            switched = await connection.run_sync(lambda sync: _try_wal(sync.connection.dbapi_connection))
        if switched:
            return
        if waited >= deadline:
            raise RuntimeError("could not switch the SQLite database to WAL: it stayed locked")
        await asyncio.sleep(delay)
        waited += delay
        delay = min(delay * 2, 0.5)


def alembic_config() -> Config:
    """An Alembic config built in code, pointing at the migrations inside the installed package."""
    config = Config()
    # ConfigParser interpolates %; a path containing one must not be mangled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found under {MIGRATIONS_DIR}")
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema revision the database is at, or None for an empty database."""
    async with engine.connect() as connection:
        revision = await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
        await connection.rollback()
    return revision


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to `revision` through `engine`, in one transaction.

    Safe when several replicas start at once: on PostgreSQL they take turns on an advisory lock,
    on SQLite on the write lock (BEGIN IMMEDIATE); whoever comes second finds the schema at head.
    """

    def run(sync_connection: Connection) -> None:
        config = alembic_config()
        # env.py uses this connection instead of opening its own (Alembic's connection sharing).
        config.attributes["connection"] = sync_connection
        command.upgrade(config, revision)

    async with _in_process_turn():
        if engine.dialect.name == "sqlite":
            await _ensure_wal(engine)
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
            await connection.run_sync(run)


# Alembic keeps the running migration's context in a module global (`alembic.context`), so two
# upgrades interleaving on one event loop would trample each other's. Replicas are separate
# processes and take turns on the database's lock; within one process they take turns here.
_upgrade_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _in_process_turn() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _upgrade_turns.get(loop)
    if lock is None:
        lock = _upgrade_turns[loop] = asyncio.Lock()
    return lock


async def upgrade(url: str | URL, revision: str = "head") -> None:
    """Apply the migrations to the database at `url`; a database already at head is left as is."""
    engine = make_engine(url)
    try:
        await upgrade_engine(engine, revision)
    finally:
        await engine.dispose()
