"""Shared fixtures: a fresh database per test, on SQLite and on PostgreSQL.

- `database_url`: a fresh database already at the schema head, once per backend: `sqlite` (a file
  in the test's tmp dir) and `postgres` (a new database on the server at TEST_DATABASE_URL, marked
  `postgres`). Without TEST_DATABASE_URL the postgres half is skipped, saying why, unless
  REQUIRE_INTEGRATION=1 (CI), where it fails: integration tests are never skipped silently there.
- `empty_database_url`: the same, but without any schema (for migration tests).
- `uow`: a `store.uow.UnitOfWork` over `database_url`; `make_run`: stores a plan and a run.

Speed: the schema is migrated once per session. SQLite tests get a copy of a migrated template
file; PostgreSQL tests share one migrated database, emptied before each test (tens of
milliseconds, where a database per test costs a few hundred). Ids are not reset between
PostgreSQL tests, and a PostgreSQL test that changes the schema must put it back.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from tests.integration import unavailable

# CI explores the same examples on every run, so a red CI is reproducible and a green one is not
# luck; a developer's machine explores new ones each time (and keeps the failures it finds).
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

POSTGRES_URL_ENV = "TEST_DATABASE_URL"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
STORE_T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def postgres_server_url() -> str:
    """TEST_DATABASE_URL, or skip (fail under REQUIRE_INTEGRATION=1) when it is not set."""
    url = os.environ.get(POSTGRES_URL_ENV, "")
    if url:
        return url
    reason = (
        f"PostgreSQL tests need {POSTGRES_URL_ENV}=postgresql+asyncpg://USER@HOST:PORT/DB "
        "(.ci/run starts a server and sets it)"
    )
    unavailable(reason)


async def _postgres_admin(server_url: str, sql: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(sql)
    finally:
        await engine.dispose()


def _run_on_own_loop(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to completion on a fresh loop in a thread.

    Session templates are built lazily from inside async fixtures, where a loop is already running
    and `asyncio.run` is not allowed.
    """
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(make())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="db-template")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _postgres_url_for(server_url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from store.db import upgrade

    path = tmp_path_factory.mktemp("template") / "template.db"
    _run_on_own_loop(lambda: upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A migrated database for the session's PostgreSQL tests, dropped at the end."""
    from store.db import upgrade

    server = postgres_server_url()
    name = f"cutover_test_{uuid.uuid4().hex[:10]}"
    _run_on_own_loop(lambda: _postgres_admin(server, f'CREATE DATABASE "{name}"'))
    try:
        _run_on_own_loop(lambda: upgrade(_postgres_url_for(server, name)))
        yield name
    finally:
        _run_on_own_loop(lambda: _postgres_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _emptied(url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from store.tables import ledger, metadata

    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            # A connection leaked by an earlier test would otherwise make this wait forever.
            await connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            # The ledger's triggers refuse DELETE and TRUNCATE (migration 0005) and every
            # foreign key is a trigger too: as a replica, this transaction fires none of them
            # (CI's user is a superuser). DELETE is several times faster than TRUNCATE on tables
            # this small, except the ledger, which grows in a few tests.
            await connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
            await connection.exec_driver_sql(f"TRUNCATE {ledger.name}")
            for table in reversed(metadata.sorted_tables):
                if table is not ledger:
                    await connection.exec_driver_sql(f"DELETE FROM {table.name}")
    finally:
        await engine.dispose()


async def _fresh_database(
    request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "cutover.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    server = postgres_server_url()
    if migrated:
        url = _postgres_url_for(server, request.getfixturevalue("postgres_database"))
        await _emptied(url)
        yield url
        return
    name = f"cutover_empty_{uuid.uuid4().hex[:12]}"
    await _postgres_admin(server, f'CREATE DATABASE "{name}"')
    try:
        yield _postgres_url_for(server, name)
    finally:
        await _postgres_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async for url in _fresh_database(request, tmp_path, migrated=True):
        yield url


@pytest.fixture(params=BACKENDS)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async for url in _fresh_database(request, tmp_path, migrated=False):
        yield url


@pytest.fixture
async def uow(database_url: str) -> AsyncIterator[Any]:
    from store.db import make_engine
    from store.uow import UnitOfWork

    unit_of_work = UnitOfWork(make_engine(database_url))
    try:
        yield unit_of_work
    finally:
        await unit_of_work.dispose()


MakeRun = Callable[..., Awaitable[str]]


@pytest.fixture
def make_run(uow: Any) -> MakeRun:
    """`await make_run("r-1", channel=..., state=...)` stores a plan revision and a run; returns the id."""

    async def make(
        run_id: str = "r-payments-1",
        *,
        channel: str | None = None,
        state: str = "running",
        plan_revision: str = "a" * 64,
        at: datetime = STORE_T0,
    ) -> str:
        async with uow.transaction() as tx:
            await tx.plans.add(revision=plan_revision, plan_id="payments", content="plan: payments\n", at=at)
            await tx.runs.create(
                run_id=run_id,
                plan_id="payments",
                plan_revision=plan_revision,
                # Each run in its own channel unless the test says otherwise: the database keeps
                # one active run per channel.
                channel=channel or f"C0{run_id.upper()}",
                state=state,
                progress={"state": state},
                acting={"release-authority": "U0REL1"},
                at=at,
            )
        return run_id

    return make
