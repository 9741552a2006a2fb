from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError

from bot.cli import main
from store.db import (
    DEFAULT_DATABASE_URL,
    alembic_config,
    current_revision,
    database_url,
    display_url,
    head_revision,
    make_engine,
    upgrade,
)
from store.tables import metadata
from store.uow import UnitOfWork

MakeRun = Callable[..., Awaitable[str]]


async def test_an_empty_database_has_no_revision_until_upgraded(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        assert await current_revision(engine) is None
        await upgrade(empty_database_url)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_upgrading_twice_changes_nothing_and_keeps_the_data(
    database_url: str, make_run: MakeRun
) -> None:
    await make_run("r-kept")
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        async with UnitOfWork(engine).transaction() as tx:
            assert (await tx.runs.require("r-kept")).run_id == "r-kept"
    finally:
        await engine.dispose()


async def test_the_migrations_build_exactly_the_tables_the_code_uses(database_url: str) -> None:
    engine = make_engine(database_url)

    def differences(sync_connection: object) -> list[object]:
        context = MigrationContext.configure(sync_connection)  # type: ignore[arg-type]
        return list(compare_metadata(context, metadata))

    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()


async def test_sqlite_connections_use_wal_a_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            assert (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 30_000
            assert (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    finally:
        await engine.dispose()


async def test_a_sqlite_write_transaction_holds_the_write_lock_from_its_first_statement(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    await upgrade(url)
    holder_engine, other_engine = make_engine(url), make_engine(url)
    try:
        async with holder_engine.begin() as holder:
            # Only a read so far, but BEGIN IMMEDIATE already owns the write lock.
            await holder.execute(text("SELECT 1"))
            async with other_engine.connect() as other:
                await other.execution_options(cutover_sqlite_begin="DEFERRED")
                await other.exec_driver_sql("PRAGMA busy_timeout = 0")
                with pytest.raises(OperationalError, match="locked"):
                    await other.exec_driver_sql("DELETE FROM ledger")
    finally:
        await holder_engine.dispose()
        await other_engine.dispose()


async def test_times_come_back_timezone_aware_in_utc_on_both_databases(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    eastern = timezone(timedelta(hours=-5))
    local = datetime(2026, 11, 24, 21, 0, 0, 123456, tzinfo=eastern)
    await make_run("r-tz", at=local)
    async with uow.transaction() as tx:
        row = await tx.runs.require("r-tz")
    assert row.created_at == local
    assert row.created_at.tzinfo == UTC
    assert row.created_at.isoformat() == "2026-11-25T02:00:00.123456+00:00"


async def test_a_naive_time_is_refused(uow: UnitOfWork) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        async with uow.transaction() as tx:
            await tx.plans.add(revision="b" * 64, plan_id="p", content="x", at=datetime(2026, 1, 1))


def test_the_database_url_is_the_flag_else_the_environment_else_a_local_sqlite_file() -> None:
    assert (
        database_url("sqlite+aiosqlite:///a.db", environ={"DATABASE_URL": "x"}) == "sqlite+aiosqlite:///a.db"
    )
    assert (
        database_url(None, environ={"DATABASE_URL": "postgresql+asyncpg://h/db"})
        == "postgresql+asyncpg://h/db"
    )
    assert database_url(None, environ={}) == DEFAULT_DATABASE_URL == "sqlite+aiosqlite:///cutover.db"


def test_a_displayed_url_never_shows_the_password() -> None:
    shown = display_url("postgresql+asyncpg://bot:s3cret@db.internal:5432/cutover")
    assert "s3cret" not in shown
    assert "db.internal" in shown


async def test_db_upgrade_on_the_command_line_migrates_the_database_named_by_the_flag(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = await asyncio.to_thread(main, ["db", "upgrade", "--database-url", empty_database_url])
    assert status == 0
    assert f"schema at revision {head_revision()}" in capsys.readouterr().out
    engine = make_engine(empty_database_url)
    try:
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_db_upgrade_reads_database_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'from-env.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    assert await asyncio.to_thread(main, ["db", "upgrade"]) == 0
    assert await asyncio.to_thread(main, ["db", "current"]) == 0
    assert "(head)" in capsys.readouterr().out.splitlines()[-1]


async def test_db_upgrade_defaults_to_cutover_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert await asyncio.to_thread(main, ["db", "upgrade"]) == 0
    assert (tmp_path / "cutover.db").exists()


async def test_db_upgrade_reports_an_unreachable_database_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Port 1 refuses at once. (Not a bad SQLite path: aiosqlite's worker thread then outlives the
    # CLI's event loop and reports an error of its own.)
    url = "postgresql+asyncpg://nobody@127.0.0.1:1/cutover"
    assert await asyncio.to_thread(main, ["db", "upgrade", "--database-url", url]) == 1
    assert "could not upgrade" in capsys.readouterr().err


async def _assert_at_head(url: str) -> None:
    engine = make_engine(url)
    try:
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_replica_processes_upgrading_an_empty_database_at_once_all_succeed(
    empty_database_url: str,
) -> None:
    # Replicas are processes; each runs the same `db upgrade` the bot runs at start.
    replicas = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "db",
            "upgrade",
            "--database-url",
            empty_database_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outcomes = [await replica.communicate() for replica in replicas]
    assert [replica.returncode for replica in replicas] == [0, 0, 0, 0], outcomes
    await _assert_at_head(empty_database_url)


async def test_upgrades_started_together_in_one_process_take_turns(empty_database_url: str) -> None:
    await asyncio.gather(*(upgrade(empty_database_url) for _ in range(3)))
    await _assert_at_head(empty_database_url)


async def test_a_new_sqlite_database_is_switched_to_wal_by_the_upgrade(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"
    await upgrade(url)
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
    finally:
        await engine.dispose()
    assert mode == "wal"


async def test_downgrading_to_nothing_and_upgrading_again_works(empty_database_url: str) -> None:
    await upgrade(empty_database_url)
    engine = make_engine(empty_database_url)

    def downgrade(sync_connection: object) -> None:
        config = alembic_config()
        config.attributes["connection"] = sync_connection
        command.downgrade(config, "base")

    try:
        async with engine.begin() as connection:
            await connection.run_sync(downgrade)
        assert await current_revision(engine) is None
        await upgrade(empty_database_url)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_an_in_memory_sqlite_database_upgrades_without_waiting_for_wal() -> None:
    # WAL does not apply to memory; the upgrade must not wait out the busy timeout for it.
    await asyncio.wait_for(upgrade("sqlite+aiosqlite:///:memory:"), timeout=20)


async def test_db_upgrade_moves_a_0001_database_to_head_and_names_withdrawn_holds_as_the_engine_does(
    empty_database_url: str,
) -> None:
    await upgrade(empty_database_url, "0001")
    engine = make_engine(empty_database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO plans (revision, plan_id, content, source, created_at) "
                    "VALUES ('r', 'p', 'x', 'p.yaml', :at)"
                ),
                {"at": datetime(2026, 1, 1, tzinfo=UTC)},
            )
            await connection.execute(
                text(
                    "INSERT INTO runs (run_id, plan_id, plan_revision, channel, state, progress, acting, "
                    "created_at, updated_at) "
                    "VALUES ('r-old', 'p', 'r', 'C1', 'rolled_back', '{}', '{}', :at, :at)"
                ),
                {"at": datetime(2026, 1, 1, tzinfo=UTC)},
            )
            for hold_id, state in (("a", "cancelled"), ("b", "released"), ("c", "open")):
                await connection.execute(
                    text(
                        "INSERT INTO holds (run_id, hold_id, source, reason, release_by, mode, state, "
                        "opened_at) VALUES ('r-old', :id, 'plan', 'x', '[]', 'any', :state, :at)"
                    ),
                    {"id": hold_id, "state": state, "at": datetime(2026, 1, 1, tzinfo=UTC)},
                )
        status = await asyncio.to_thread(main, ["db", "upgrade", "--database-url", empty_database_url])
        assert status == 0
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as connection:
            states = (
                await connection.execute(text("SELECT hold_id, state FROM holds ORDER BY hold_id"))
            ).all()
            tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    finally:
        await engine.dispose()
    assert [tuple(s) for s in states] == [("a", "withdrawn"), ("b", "released"), ("c", "open")]
    assert not tables & {"checkpoints", "hold_approvals", "signoffs", "acting_changes"}
