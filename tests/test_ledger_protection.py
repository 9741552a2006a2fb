"""The database itself keeps the ledger append-only and its heads moving forward only (migration 0005).

Raw SQL, as someone with the bot's credentials would type it: the ledger refuses UPDATE, DELETE
and (PostgreSQL) TRUNCATE; `ledger_heads` refuses DELETE, TRUNCATE, a head moving back, skipping
ahead or naming a hash the ledger does not hold. The append path still moves the head.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from store.uow import UnitOfWork
from tests.conftest import MakeRun

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
RUN = "r-payments-1"


async def three_entries(uow: UnitOfWork, make_run: MakeRun) -> None:
    await make_run(RUN)
    for n in range(3):
        async with uow.transaction(run_id=RUN) as tx:
            await tx.ledger.append(run_id=RUN, actor="U0REL1", kind="k", payload={"n": n}, at=T0)


async def refused(uow: UnitOfWork, statement: str, match: str) -> None:
    with pytest.raises(DBAPIError, match=match):
        async with uow.engine.begin() as connection:
            await connection.execute(text(statement), {"r": RUN})


async def test_the_ledger_refuses_update_delete_and_truncate(uow: UnitOfWork, make_run: MakeRun) -> None:
    await three_entries(uow, make_run)
    statements = ["UPDATE ledger SET kind = 'other' WHERE run_id = :r", "DELETE FROM ledger"]
    if uow.dialect == "postgresql":
        statements += ["TRUNCATE ledger", "TRUNCATE ledger, ledger_heads"]
    for statement in statements:
        await refused(uow, statement, "append-only")
    async with uow.transaction(read_only=True) as tx:
        assert len(await tx.ledger.entries(RUN)) == 3


async def test_a_chain_head_cannot_be_deleted_or_truncated(uow: UnitOfWork, make_run: MakeRun) -> None:
    await three_entries(uow, make_run)
    await refused(uow, "DELETE FROM ledger_heads WHERE run_id = :r", "only move forward")
    if uow.dialect == "postgresql":
        await refused(uow, "TRUNCATE ledger_heads", "only move forward")


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(
            "UPDATE ledger_heads SET seq = 2, hash = (SELECT hash FROM ledger WHERE run_id = :r AND seq = 2) "
            "WHERE run_id = :r",
            id="moved-back",
        ),
        pytest.param("UPDATE ledger_heads SET seq = 5 WHERE run_id = :r", id="skipped-ahead"),
        pytest.param(
            "UPDATE ledger_heads SET seq = 4, hash = '" + "f" * 64 + "' WHERE run_id = :r",
            id="forward-to-an-unknown-hash",
        ),
        pytest.param(
            "UPDATE ledger_heads SET hash = '" + "e" * 64 + "' WHERE run_id = :r", id="hash-rewritten"
        ),
        pytest.param("UPDATE ledger_heads SET run_id = 'r-other' WHERE run_id = :r", id="renamed"),
        pytest.param(
            "INSERT INTO ledger_heads (run_id, seq, hash) VALUES ('r-new', 7, '" + "a" * 64 + "')",
            id="inserted-ahead",
        ),
    ],
)
async def test_a_chain_head_moves_only_as_an_append_moves_it(
    uow: UnitOfWork, make_run: MakeRun, statement: str
) -> None:
    await three_entries(uow, make_run)
    await refused(uow, statement, "only move forward")
    async with uow.transaction(read_only=True) as tx:
        head = await tx.ledger.head(RUN)
        assert head is not None and head.seq == 3
        assert (await tx.ledger.verify(RUN)).ok


async def test_appends_still_move_the_head_forward(uow: UnitOfWork, make_run: MakeRun) -> None:
    await three_entries(uow, make_run)
    async with uow.transaction(run_id=RUN) as tx:
        entry = await tx.ledger.append(run_id=RUN, actor="U0REL1", kind="k", payload={}, at=T0)
    async with uow.transaction(read_only=True) as tx:
        head = await tx.ledger.head(RUN)
    assert head is not None and (head.seq, head.hash) == (4, entry.hash)
