"""`cutover-bot ledger verify` against ledgers tampered with by raw SQL, as an attacker would.

The database's append-only triggers are switched off first: that is what someone with DDL rights
would do, and it is exactly the case the hash chain exists for.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.cli import main
from bot.commands.ledger import verify_ledger
from store.columns import UTCDateTime
from store.uow import UnitOfWork

MakeRun = Callable[..., Awaitable[str]]
Tamper = Callable[[AsyncConnection], Awaitable[None]]
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
RUN, OTHER = "r-payments-1", "r-payments-2"
LENGTH = 5


async def fill(uow: UnitOfWork, make_run: MakeRun) -> None:
    for run_id in (RUN, OTHER):
        await make_run(run_id)
        for n in range(LENGTH):
            async with uow.transaction(run_id=run_id) as tx:
                await tx.ledger.append(
                    run_id=run_id,
                    actor="U0REL1",
                    kind="hold_released",
                    payload={"hold": f"h{n}", "as": "release-authority"},
                    at=T0 + timedelta(minutes=n),
                )


async def tamper(uow: UnitOfWork, change: Tamper) -> None:
    async with uow.engine.begin() as connection:
        if uow.dialect == "postgresql":
            # Switched back on in the same transaction: the PostgreSQL test database is shared.
            for table in ("ledger", "ledger_heads"):
                await connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            await change(connection)
            for table in ("ledger", "ledger_heads"):
                await connection.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        else:
            triggers = await connection.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name LIKE 'ledger%'")
            )
            for (name,) in triggers.all():
                await connection.execute(text(f"DROP TRIGGER {name}"))
            await change(connection)


async def verify(*args: str) -> int:
    return await asyncio.to_thread(main, ["ledger", "verify", *args])


async def row(connection: AsyncConnection, seq: int) -> dict[str, object]:
    result = await connection.execute(
        text("SELECT * FROM ledger WHERE run_id = :r AND seq = :s"), {"r": RUN, "s": seq}
    )
    return dict(result.mappings().one())


async def edit_payload(connection: AsyncConnection) -> None:
    await connection.execute(
        text(
            """UPDATE ledger SET payload = '{"as":"release-authority","hold":"h-forged"}' """
            "WHERE run_id = :r AND seq = 3"
        ),
        {"r": RUN},
    )


async def delete_row(connection: AsyncConnection) -> None:
    await connection.execute(text("DELETE FROM ledger WHERE run_id = :r AND seq = 3"), {"r": RUN})


async def delete_last_row(connection: AsyncConnection) -> None:
    await connection.execute(
        text("DELETE FROM ledger WHERE run_id = :r AND seq = :s"), {"r": RUN, "s": LENGTH}
    )


async def swap_rows(connection: AsyncConnection) -> None:
    # In three steps: the primary key must hold after each statement.
    for old, new in ((3, -1), (4, 3), (-1, 4)):
        await connection.execute(
            text("UPDATE ledger SET seq = :new WHERE run_id = :r AND seq = :old"),
            {"r": RUN, "old": old, "new": new},
        )


async def _append_forged(
    connection: AsyncConnection, *, prev_hash: str, recompute: bool, move_head: bool
) -> None:
    seq = LENGTH + 1
    payload = '{"as":"release-authority","hold":"widen"}'
    at = T0 + timedelta(hours=1)
    entry = {
        "seq": seq,
        "at": at.isoformat(),
        "run": RUN,
        "actor": "U0REL1",
        "kind": "hold_released",
        "payload": json.loads(payload),
    }
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256((prev_hash + canonical).encode()).hexdigest() if recompute else "f" * 64
    insert = text(
        "INSERT INTO ledger (run_id, seq, at, actor, kind, payload, prev_hash, hash) "
        "VALUES (:r, :seq, :at, 'U0REL1', 'hold_released', :payload, :prev, :hash)"
    ).bindparams(bindparam("at", type_=UTCDateTime))  # stored the way the store stores times
    await connection.execute(
        insert, {"r": RUN, "seq": seq, "at": at, "payload": payload, "prev": prev_hash, "hash": digest}
    )
    if move_head:
        await connection.execute(
            text("UPDATE ledger_heads SET seq = :seq, hash = :hash WHERE run_id = :r"),
            {"r": RUN, "seq": seq, "hash": digest},
        )


async def forge_with_a_wrong_link(connection: AsyncConnection) -> None:
    # The forger recomputes the hash correctly, but over a link to an older entry.
    await _append_forged(
        connection, prev_hash=str((await row(connection, 2))["hash"]), recompute=True, move_head=True
    )


async def forge_with_a_bad_hash(connection: AsyncConnection) -> None:
    last = await row(connection, LENGTH)
    await _append_forged(connection, prev_hash=str(last["hash"]), recompute=False, move_head=True)


async def forge_perfectly_but_leave_the_head(connection: AsyncConnection) -> None:
    last = await row(connection, LENGTH)
    await _append_forged(connection, prev_hash=str(last["hash"]), recompute=True, move_head=False)


TAMPERING = [
    pytest.param(edit_payload, 3, "hash does not match", id="edited-payload"),
    pytest.param(delete_row, 3, "entry 3 is missing", id="deleted-row"),
    pytest.param(delete_last_row, LENGTH, f"entry {LENGTH} is missing", id="deleted-last-row"),
    pytest.param(swap_rows, 3, "does not link", id="swapped-rows"),
    pytest.param(forge_with_a_wrong_link, LENGTH + 1, "does not link", id="forged-row-wrong-link"),
    pytest.param(forge_with_a_bad_hash, LENGTH + 1, "hash does not match", id="forged-row-bad-hash"),
    pytest.param(
        forge_perfectly_but_leave_the_head, LENGTH + 1, "past the recorded head", id="forged-row-past-head"
    ),
]


async def test_an_intact_ledger_verifies_and_exits_zero(
    uow: UnitOfWork, make_run: MakeRun, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await fill(uow, make_run)
    assert await verify("--database-url", database_url) == 0
    out = capsys.readouterr().out
    assert f"run {RUN}: {LENGTH} entries verified" in out
    assert f"run {OTHER}: {LENGTH} entries verified" in out


@pytest.mark.parametrize(("change", "seq", "problem"), TAMPERING)
async def test_tampering_is_detected_at_the_first_sequence_number_that_does_not_verify(
    uow: UnitOfWork,
    make_run: MakeRun,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    change: Tamper,
    seq: int,
    problem: str,
) -> None:
    await fill(uow, make_run)
    await tamper(uow, change)

    assert await verify("--database-url", database_url) == 1
    captured = capsys.readouterr()
    assert f"run {RUN}: ledger broken at seq {seq}: " in captured.err
    assert problem in captured.err
    # The other run's chain is untouched and still says so.
    assert f"run {OTHER}: {LENGTH} entries verified" in captured.out


async def test_verifying_one_run_checks_only_that_run(
    uow: UnitOfWork, make_run: MakeRun, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await fill(uow, make_run)
    await tamper(uow, edit_payload)
    assert await verify("--run", OTHER, "--database-url", database_url) == 0
    assert await verify("--run", RUN, "--database-url", database_url) == 1
    captured = capsys.readouterr()
    assert f"run {OTHER}: {LENGTH} entries verified" in captured.out
    assert RUN + ":" not in captured.out
    assert f"run {RUN}: ledger broken at seq 3" in captured.err


async def test_verifying_a_run_with_no_ledger_fails(
    uow: UnitOfWork, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await verify("--run", "r-never", "--database-url", database_url) == 1
    assert "r-never: no ledger entries" in capsys.readouterr().err


async def test_verify_reads_database_url_from_the_environment(
    uow: UnitOfWork,
    make_run: MakeRun,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await fill(uow, make_run)
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert await verify() == 0
    assert f"run {RUN}: {LENGTH} entries verified" in capsys.readouterr().out


async def test_an_empty_ledger_verifies(
    uow: UnitOfWork, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await verify("--database-url", database_url) == 0
    assert "no ledger entries yet" in capsys.readouterr().out


async def test_verify_runs_beside_a_writer_holding_the_run_lock(
    uow: UnitOfWork, make_run: MakeRun, database_url: str
) -> None:
    await fill(uow, make_run)
    async with uow.transaction(run_id=RUN) as tx:
        await tx.ledger.append(run_id=RUN, actor="U1", kind="k", payload={}, at=T0)
        # Read-only: neither waits for the open write transaction nor sees its entry.
        assert await verify("--run", RUN, "--database-url", database_url) == 0


async def test_verify_beside_a_writer_appending_busily_never_reports_a_false_alarm(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    # Rows and head must come from one snapshot: read apart, a commit between them looks like a
    # missing entry or a head that does not match.
    await fill(uow, make_run)
    done = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not done.is_set():
            async with uow.transaction(run_id=RUN) as tx:
                await tx.ledger.append(run_id=RUN, actor="U0REL1", kind="k", payload={"n": n}, at=T0)
            n += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    try:
        alarms = []
        for _ in range(60):
            alarms += [v for v in await verify_ledger(uow) if not v.ok]
            await asyncio.sleep(0)
    finally:
        done.set()
        await task
    assert alarms == []
