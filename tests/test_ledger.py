from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from store.ledger import GENESIS, ChainHead, StoredEntry, check_chain
from store.uow import UnitOfWork

MakeRun = Callable[..., Awaitable[str]]
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


def expected_hash(prev_hash: str, entry: dict[str, object]) -> str:
    # Written out here on purpose, not imported: the test pins the documented formula.
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


async def test_the_first_entry_links_to_genesis_and_hashes_its_canonical_form(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    eastern = timezone(timedelta(hours=-5))
    async with uow.transaction(run_id=run_id) as tx:
        entry = await tx.ledger.append(
            run_id=run_id,
            actor="U0ENG1",
            kind="late_reported",
            payload={"checkpoint": "key-replication", "by": "+40m", "note": "draining — still"},
            at=datetime(2026, 11, 24, 21, 40, tzinfo=eastern),
        )
    assert (entry.seq, entry.prev_hash) == (1, "0" * 64)
    assert entry.at == datetime(2026, 11, 25, 2, 40, tzinfo=UTC)
    assert entry.hash == expected_hash(
        "0" * 64,
        {
            "seq": 1,
            "at": "2026-11-25T02:40:00+00:00",
            "run": run_id,
            "actor": "U0ENG1",
            "kind": "late_reported",
            "payload": {"checkpoint": "key-replication", "by": "+40m", "note": "draining — still"},
        },
    )


async def test_each_run_has_its_own_chain_numbered_from_one(uow: UnitOfWork, make_run: MakeRun) -> None:
    first, second = await make_run("r-a"), await make_run("r-b")
    for n in range(3):
        for run_id in (first, second):
            async with uow.transaction(run_id=run_id) as tx:
                await tx.ledger.append(
                    run_id=run_id, actor="bot", kind=f"k{n}", payload={"n": n}, at=T0 + timedelta(seconds=n)
                )
    async with uow.transaction(read_only=True) as tx:
        entries = await tx.ledger.entries(first)
        assert [e.seq for e in entries] == [1, 2, 3]
        assert [e.seq for e in await tx.ledger.entries(second)] == [1, 2, 3]
        assert [e.prev_hash for e in entries] == [GENESIS, entries[0].hash, entries[1].hash]
        assert await tx.ledger.head(first) == ChainHead(seq=3, hash=entries[2].hash)
        assert await tx.ledger.chains() == ["r-a", "r-b"]
        assert all(v.ok and v.entries == 3 for v in await tx.ledger.verify_all())


async def test_entries_read_back_as_appended(uow: UnitOfWork, make_run: MakeRun) -> None:
    run_id = await make_run()
    async with uow.transaction(run_id=run_id) as tx:
        appended = [
            await tx.ledger.append(
                run_id=run_id,
                actor="U1",
                kind="k",
                payload={"n": n, "pair": (n, n)},
                at=T0 + timedelta(seconds=n),
            )
            for n in range(5)
        ]
    async with uow.transaction(read_only=True) as tx:
        assert await tx.ledger.entries(run_id) == appended
        assert await tx.ledger.entries(run_id, after_seq=2, limit=2) == appended[2:4]
        assert await tx.ledger.tail(run_id, 2) == appended[3:]
    # What is hashed is what comes back: the tuple is stored as the JSON list it becomes.
    assert appended[0].payload == {"n": 0, "pair": [0, 0]}
    assert appended[0].body()["payload"] == {"n": 0, "pair": [0, 0]}


async def test_concurrent_appends_to_one_chain_never_fork_it(uow: UnitOfWork, make_run: MakeRun) -> None:
    # No run lock: only the chain's head row keeps the appends in line.
    run_id = await make_run()

    async def append(n: int) -> None:
        async with uow.transaction() as tx:
            await tx.ledger.append(run_id=run_id, actor="U1", kind="k", payload={"n": n}, at=T0)
            await asyncio.sleep(0)

    await asyncio.gather(*(append(n) for n in range(25)))
    async with uow.transaction(read_only=True) as tx:
        assert [e.seq for e in await tx.ledger.entries(run_id)] == list(range(1, 26))
        assert (await tx.ledger.verify(run_id)).ok


async def test_the_database_refuses_to_update_or_delete_a_ledger_row(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    async with uow.transaction(run_id=run_id) as tx:
        await tx.ledger.append(run_id=run_id, actor="U1", kind="k", payload={}, at=T0)
    for statement in ("UPDATE ledger SET kind = 'other'", "DELETE FROM ledger"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with uow.engine.begin() as connection:
                await connection.execute(text(statement))


def test_no_code_path_updates_or_deletes_a_ledger_row() -> None:
    forbidden = re.compile(r"(update|delete)\(\s*ledger\b|(UPDATE|DELETE\s+FROM)\s+ledger\b", re.IGNORECASE)
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("store", "handlers", "bot")
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts and forbidden.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def stored(seq: int, prev_hash: str, *, payload: str = "{}", run_id: str = "r-1") -> StoredEntry:
    entry = {
        "seq": seq,
        "at": T0.isoformat(),
        "run": run_id,
        "actor": "U1",
        "kind": "k",
        "payload": json.loads(payload),
    }
    return StoredEntry(
        run_id=run_id,
        seq=seq,
        at=T0,
        actor="U1",
        kind="k",
        payload_text=payload,
        prev_hash=prev_hash,
        hash=expected_hash(prev_hash, entry),
    )


def chain(length: int) -> list[StoredEntry]:
    rows: list[StoredEntry] = []
    for seq in range(1, length + 1):
        rows.append(stored(seq, rows[-1].hash if rows else GENESIS))
    return rows


def test_an_empty_chain_without_a_head_verifies() -> None:
    assert check_chain("r-1", [], None).ok


def test_a_chain_whose_head_says_more_than_it_holds_is_missing_its_tail() -> None:
    rows = chain(3)
    verdict = check_chain("r-1", rows[:2], ChainHead(seq=3, hash=rows[2].hash))
    assert (verdict.broken_at, verdict.problem) == (3, "entry 3 is missing (head is at 3)")


def test_a_payload_reformatted_without_changing_its_meaning_still_fails() -> None:
    rows = chain(2)
    reformatted = StoredEntry(
        **{**{f: getattr(rows[1], f) for f in StoredEntry.__slots__}, "payload_text": "{ }"}
    )
    verdict = check_chain("r-1", [rows[0], reformatted], ChainHead(seq=2, hash=rows[1].hash))
    assert (verdict.broken_at, verdict.problem) == (2, "payload is not the text that was hashed")


def test_a_verdict_describes_itself_in_one_line() -> None:
    rows = chain(2)
    assert check_chain("r-1", rows, ChainHead(2, rows[1].hash)).describe() == "run r-1: 2 entries verified"
    broken = check_chain("r-1", [rows[1]], ChainHead(2, rows[1].hash))
    assert broken.describe() == "run r-1: ledger broken at seq 1: entry 1 is missing"
