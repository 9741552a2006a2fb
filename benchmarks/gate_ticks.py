"""One gate tick across 500 active runs on SQLite: does a tick fit well inside the gate interval?

500 runs of a small plan (one traffic checkpoint with four gates and a long soak), each in its own
war-room channel (the plans differ only by channel and plan id), started and soaking. One tick is
what the bot's scheduler does when every run's tick comes due at once (`Scheduler.tick` for each:
runs due together are ticked `TICK_BATCH` per transaction), up to the moment every run's tick job
has been derived again from what the tick changed (`Scheduler.settle`).
The first tick also parses each of the 500 plans once; the second, the steady state, is the one
the ratio is about.
The ratio is the tick's time over the plan's gate interval (60 s): above 1, ticks fall behind.

Set-up: the first run is opened, signed off and started through the use cases; the other 499 are
copies of its rows with the plan id, channel and plan revision substituted (each copy's plan text
is exactly the plan it stands for, so its revision is genuine). Creating 500 runs through the use
cases takes minutes on SQLite and is not what is measured. The copies' ledger chains are not
re-hashed (nothing in a tick verifies them). The tick itself runs on a fresh engine with the
store's own settings.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

from benchmarks._world import gated_plan, make_world, quiet, started_run
from bot.scheduler import Scheduler
from handlers.outcome import Outcome
from packets.plan_load import load_plan

RUNS = int(os.environ.get("GATE_RUNS", "500"))
INTERVAL_S = 60.0
# Tables holding a started run's rows (outbox rows are left out: nothing here sends them).
_TABLES = ("plans", "runs", "packets", "ledger", "ledger_heads")


def _names(i: int) -> tuple[str, str]:
    return f"gates-{i:04d}", f"C0G{i:06d}"


def _revision(i: int) -> str:
    plan_id, channel = _names(i)
    return load_plan(json.dumps(gated_plan(plan_id=plan_id, channel=channel)), source="x.json").revision


def _clone(path: str, copies: int) -> None:
    """Copy run 0's rows `copies` times, substituting plan id, channel and plan revision."""
    first_id, first_channel = _names(0)
    first_revision = _revision(0)
    db = sqlite3.connect(path)
    try:
        rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
        for table in _TABLES:
            cursor = db.execute(f"SELECT * FROM {table}")  # ledger_heads: run_id first
            rows[table] = ([d[0] for d in cursor.description], cursor.fetchall())
        for i in range(1, copies + 1):
            plan_id, channel = _names(i)
            revision = _revision(i)

            def swap(
                value: Any, plan_id: str = plan_id, channel: str = channel, revision: str = revision
            ) -> Any:
                if not isinstance(value, str):
                    return value
                swapped = value.replace(first_id, plan_id).replace(first_channel, channel)
                return swapped.replace(first_revision, revision)

            for table, (columns, values) in rows.items():
                if table == "ledger_heads":
                    _move_heads(db, [swap(row[0]) for row in values])
                    continue
                marks = ", ".join("?" for _ in columns)
                db.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                    [tuple(swap(v) for v in row) for row in values],
                )
        db.commit()
    finally:
        db.close()


def _move_heads(db: sqlite3.Connection, runs: list[str]) -> None:
    """Each copy's head as the append path moves it (the store's triggers allow nothing else): from
    genesis, one entry at a time."""
    for run in runs:
        db.execute("INSERT INTO ledger_heads (run_id, seq, hash) VALUES (?, 0, ?)", (run, "0" * 64))
        entries = db.execute("SELECT seq, hash FROM ledger WHERE run_id = ? ORDER BY seq", (run,))
        for seq, hash_ in entries.fetchall():
            db.execute("UPDATE ledger_heads SET seq = ?, hash = ? WHERE run_id = ?", (seq, hash_, run))


async def _tick(scheduler: Scheduler, runs: list[str]) -> list[Outcome | None]:
    """One tick of every run, as the scheduler's jobs fire when they come due together."""
    outcomes = await asyncio.gather(*(scheduler.tick(run) for run in runs))
    await scheduler.settle()
    return list(outcomes)


async def _measure() -> dict[str, str]:
    setup_world = await make_world(fast_writes=True)
    world = setup_world
    scheduler: Scheduler | None = None
    try:
        began = time.perf_counter()
        plan_id, channel = _names(0)
        first = await started_run(setup_world, gated_plan(plan_id=plan_id, channel=channel))
        await setup_world.close(keep_files=True)
        _clone(setup_world.url.split("///", 1)[1], RUNS - 1)
        setup = time.perf_counter() - began
        runs = [first.replace(plan_id, _names(i)[0]) for i in range(RUNS)]
        world = setup_world.reopened()

        def on_change(run: str) -> None:
            # As bot.wiring wires it: a changed run's tick job is derived again.
            if scheduler is not None:
                scheduler.refresh_soon(run)

        deps = replace(world.deps, on_change=on_change)
        scheduler = Scheduler(deps=deps)
        await scheduler.start(dispatch_loop=False, startup_ticks=False)
        world.clock.advance(timedelta(minutes=1))
        began = time.perf_counter()
        await _tick(scheduler, runs)
        first_tick = time.perf_counter() - began
        # The steady state: every plan parsed once already (a running bot parses each plan once).
        world.clock.advance(timedelta(minutes=1))
        began = time.perf_counter()
        outcomes = await _tick(scheduler, runs)
        tick = time.perf_counter() - began
        async with world.uow.transaction(read_only=True) as tx:
            measured = 0
            for r in runs[:: max(1, RUNS // 20)]:
                measured += bool(await tx.gate_results.for_run(r))
        return {
            "gate_tick_setup_s": f"{setup:.2f}",
            "gate_tick_500_runs_first_s": f"{first_tick:.2f}",
            "gate_tick_500_runs_s": f"{tick:.2f}",
            "gate_tick_ratio_to_interval": f"{tick / INTERVAL_S:.3f}",
            "gate_tick_per_run_ms": f"{tick / RUNS * 1000:.1f}",
            "gate_tick_refused": str(sum(1 for o in outcomes if o is None or not o.ok)),
            "gate_tick_runs_checked": str(
                sum(1 for o in outcomes if o is not None and o.data.get("results"))
            ),
            "gate_tick_sampled_runs_with_results": f"{measured}/{len(runs[:: max(1, RUNS // 20)])}",
        }
    finally:
        if scheduler is not None:
            await scheduler.stop()
        await world.close()


def run() -> None:
    quiet()
    for name, value in asyncio.run(_measure()).items():
        print(f"{name}: {value}")
