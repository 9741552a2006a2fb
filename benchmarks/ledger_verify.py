"""False alarms of `ledger verify` beside a writer appending busily: before and after one snapshot.

A writer appends to a run's chain in a loop, one entry per transaction, as a busy bot does (a new
run every 200 entries, so the chain read stays the size of a real run's). Beside it 1,000 verifies
read that run's chain and its head. "before" reads them as `ledger verify` used to, in a
read-only transaction at the database's default isolation (READ COMMITTED on PostgreSQL: each
statement sees the latest commits, so rows and head can come from different moments); "after" is
the command as it is, one snapshot (REPEATABLE READ READ ONLY). Every broken verdict is a false
alarm: nobody tampers here.

On PostgreSQL when BENCH_DATABASE_URL (or TEST_DATABASE_URL, the tests' server) names one, in a
database of its own dropped at the end; otherwise on a SQLite file, where a deferred read
transaction is one WAL snapshot either way.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime

from benchmarks._world import fresh_postgres_database
from bot.commands.ledger import verify_ledger
from store.db import make_engine, upgrade
from store.ledger import ChainVerdict
from store.uow import UnitOfWork

VERIFIES = 1000
CHAIN_LENGTH = 200
AT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


async def _verify_without_snapshot(uow: UnitOfWork, run_id: str) -> list[ChainVerdict]:
    # What `ledger verify` did before: read-only, but each statement its own snapshot.
    async with uow.transaction(read_only=True) as tx:
        return [await tx.ledger.verify(run_id)]


async def _measure(url: str) -> dict[str, tuple[int, float]]:
    uow = UnitOfWork(make_engine(url))
    done = asyncio.Event()
    appended = 0

    async def writer() -> None:
        nonlocal appended
        while not done.is_set():
            run_id = f"r-bench-{appended // CHAIN_LENGTH}"
            async with uow.transaction() as tx:
                await tx.ledger.append(
                    run_id=run_id, actor="U0REL1", kind="gate_passed", payload={"n": appended}, at=AT
                )
            appended += 1
            await asyncio.sleep(0)

    results: dict[str, tuple[int, float]] = {}
    task = asyncio.create_task(writer())
    try:
        for label, check in (("before", _verify_without_snapshot), ("after", verify_ledger)):
            alarms = 0
            started = time.perf_counter()
            for _ in range(VERIFIES):
                verdicts = await check(uow, f"r-bench-{appended // CHAIN_LENGTH}")
                alarms += any(not v.ok for v in verdicts)
                await asyncio.sleep(0)
            results[label] = (alarms, time.perf_counter() - started)
    finally:
        done.set()
        await task
        await uow.dispose()
    results["appended"] = (appended, 0.0)
    return results


async def _main() -> None:
    server = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if server:
        async with fresh_postgres_database(server) as url:
            await upgrade(url)
            results = await _measure(url)
        backend = "postgresql"
    else:
        url = f"sqlite+aiosqlite:///{os.path.join(tempfile.mkdtemp(prefix='cutover-bench-'), 'ledger.db')}"
        await upgrade(url)
        results = await _measure(url)
        backend = "sqlite"
    for label in ("before", "after"):
        alarms, seconds = results[label]
        print(
            f"ledger verify beside a writer ({backend}, {label}): "
            f"{alarms} false alarms in {VERIFIES} verifies, {seconds / VERIFIES * 1000:.1f} ms each"
        )
    print(f"ledger verify beside a writer ({backend}): {results['appended'][0]} entries appended meanwhile")


def run() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    run()
