"""Shared set-up for the benchmarks: a migrated temp SQLite database, Deps with a simulated clock,
LogActuator and simulated telemetry (as bot.rehearsal builds them), generated plans, and the run
steps (open, sign off, start) through the real use cases."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bot.actuators import LogActuator
from bot.clock import SimulatedClock
from bot.dispatcher import Dispatcher, make_client
from bot.outbox_port import StoreOutbox
from bot.telemetry.simulated import SimulatedTelemetry
from bot.wiring import build_deps
from handlers import commands as c
from handlers.adoption import adopt_packet
from handlers.deps import Deps
from handlers.resequence import report_late
from handlers.runs import ask_engine, open_run, sign_off
from packets.plan import Plan
from packets.plan_load import load_plan
from store.db import make_engine, upgrade
from store.outbox import OutboxRow
from store.uow import UnitOfWork
from tests.slack_standin import SlackStandin

WINDOW_START = datetime.fromisoformat("2026-11-24T21:00:00-05:00")
AUTHORITY = "U0REL1"
ENG = "U0ENG1"


def quiet() -> None:
    """Benchmarks print only `name: value` lines."""
    logging.disable(logging.WARNING)


def chained_plan(
    n: int,
    *,
    plan_id: str = "fanout",
    channel: str = "C0BENCH",
    one_role_each: bool = True,
    duration: str = "5m",
) -> dict[str, Any]:
    """`n` checkpoints in a chain; with `one_role_each`, checkpoint i is owned by role r-i (user U0P<i>)."""
    roles: dict[str, Any] = {
        "release-authority": {"primary": AUTHORITY, "delegates": ["U0REL2"]},
        "release-eng": {"primary": ENG},
    }
    checkpoints = []
    for i in range(n):
        owner = f"r-{i}" if one_role_each else "release-eng"
        if one_role_each:
            roles[owner] = {"primary": f"U0P{i:04d}"}
        cp: dict[str, Any] = {
            "id": f"cp-{i}",
            "title": f"Checkpoint {i}",
            "owner": owner,
            "duration": duration,
        }
        if i:
            cp["after"] = [f"cp-{i - 1}"]
        checkpoints.append(cp)
    return {
        "plan": plan_id,
        "title": "Benchmark plan",
        "channel": channel,
        "window": {"start": WINDOW_START.isoformat(), "end": (WINDOW_START + timedelta(days=3)).isoformat()},
        "material_shift": "5m",
        "roles": roles,
        "authority": {
            "signoff": ["release-authority"],
            "adopt_packets": ["release-authority"],
            "change_delegates": ["release-authority"],
            "start_and_rollback": ["release-authority", "release-eng"],
        },
        "telemetry": {"provider": "simulated"},
        "actuator": {"kind": "log"},
        "checkpoints": checkpoints,
    }


def gated_plan(*, plan_id: str, channel: str) -> dict[str, Any]:
    """One traffic checkpoint with four gates and a soak (the shape of a canary)."""
    plan = chained_plan(0, plan_id=plan_id, channel=channel, one_role_each=False)
    plan["gate_policy"] = {"interval": "1m", "consecutive_passes": 3, "no_data": "fail"}
    plan["gates"] = {
        "auth-success": {"query": "auth", "pass": ">= 0.995", "on_fail": "rollback_cohort"},
        "lookup-latency": {"query": "latency", "pass": "<= 0.25", "on_fail": "hold"},
        "fallback-health": {"query": "fallback", "pass": ">= 1", "on_fail": "freeze"},
        "error-rate": {"query": "errors", "pass": "< 0.05", "on_fail": "global_rollback"},
    }
    plan["checkpoints"] = [
        {
            "id": "canary",
            "title": "Shift merchant cohort A",
            "owner": "release-eng",
            "traffic": {"percent": 5, "cohort": "merchant-a"},
            "soak": "24h",
            "gates": ["auth-success", "lookup-latency", "fallback-health", "error-rate"],
        }
    ]
    return plan


@dataclass
class World:
    deps: Deps
    uow: UnitOfWork
    clock: SimulatedClock
    workdir: str

    url: str = ""

    def reopened(self, *, fast_writes: bool = False) -> World:
        """The same database and clock over a fresh engine (the old one is left to `close`)."""
        uow = UnitOfWork(_engine(self.url, fast_writes=fast_writes))
        deps = build_deps(
            uow=uow,
            clock=self.clock,
            telemetry_for=self.deps.telemetry_for,
            actuator_for=self.deps.actuator_for,
        )
        return World(deps=deps, uow=uow, clock=self.clock, workdir=self.workdir, url=self.url)

    async def close(self, *, keep_files: bool = False) -> None:
        await self.uow.dispose()
        if not keep_files:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _engine(url: str, *, fast_writes: bool) -> Any:
    engine = make_engine(url)
    if fast_writes:
        # Set-up only: no fsync per commit, so hundreds of runs are created quickly. Whatever is
        # measured runs on an engine from `reopened()`, with the store's own settings.
        from sqlalchemy import event

        @event.listens_for(engine.sync_engine, "connect")
        def _no_sync(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.close()

    return engine


async def make_world(*, fast_writes: bool = False, url: str | None = None) -> World:
    """A world on a fresh SQLite file, or on the (empty) database at `url`."""
    workdir = tempfile.mkdtemp(prefix="cutover-bench-")
    url = url or f"sqlite+aiosqlite:///{os.path.join(workdir, 'bench.db')}"
    await upgrade(url)
    uow = UnitOfWork(_engine(url, fast_writes=fast_writes))
    clock = SimulatedClock(WINDOW_START)
    actuator = LogActuator()
    telemetries: dict[str, SimulatedTelemetry] = {}

    def telemetry_for(p: Plan) -> SimulatedTelemetry:
        if p.revision not in telemetries:
            telemetries[p.revision] = SimulatedTelemetry(p)
        return telemetries[p.revision]

    deps = build_deps(uow=uow, clock=clock, telemetry_for=telemetry_for, actuator_for=lambda _p: actuator)
    return World(deps=deps, uow=uow, clock=clock, workdir=workdir, url=url)


async def started_run(world: World, plan_dict: dict[str, Any]) -> str:
    """Open, sign off and start a run of `plan_dict`; returns the run id."""
    text = json.dumps(plan_dict)
    plan = load_plan(text, source=f"{plan_dict['plan']}.json")
    deps = world.deps
    outcome = await open_run(
        c.OpenRun(plan_text=text, source=f"{plan_dict['plan']}.json", channel=plan.channel, user=ENG), deps
    )
    assert outcome.ok, outcome.message
    run = str(outcome.run)
    outcome = await sign_off(c.SignOff(run=run, user=AUTHORITY, revision=plan.revision), deps)
    assert outcome.ok, outcome.message
    outcome = await ask_engine(c.EngineIntent(run=run, user=ENG, move=c.Move.START), deps)
    assert outcome.ok, outcome.message
    return run


@asynccontextmanager
async def fresh_postgres_database(server: str) -> AsyncIterator[str]:
    """A new, empty database on the PostgreSQL server at `server` (its URL), dropped afterwards."""
    name = f"cutover_bench_{uuid.uuid4().hex[:12]}"
    await _admin(server, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(server_url: str, sql: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(sql)
    finally:
        await engine.dispose()


async def queued_fan_out(world: World, slack: SlackStandin, people: int) -> tuple[str, list[OutboxRow]]:
    """A started run of a chained plan of `people` checkpoints whose first is reported late and
    the proposal adopted: the run, and the outbox rows that queued (a DM to each person, the
    channel's card and superseded notice). The set-up's own notices go out first, unmeasured."""
    run = await started_run(world, chained_plan(people))
    client = make_client(token=slack.token, base_url=slack.base_url)
    outbox = StoreOutbox(world.uow)
    await Dispatcher(client=client, outbox=outbox, find_target=outbox.find_target).drain(
        now_fn=world.clock.now
    )
    world.clock.advance(timedelta(minutes=1))
    late = c.ReportLate(
        run=run,
        user="U0P0000",
        checkpoint="cp-0",
        until=WINDOW_START + timedelta(hours=1),
        reason="keys slow",
    )
    reported = await report_late(late, world.deps)
    assert reported.ok, reported.message
    adopted = await adopt_packet(c.AdoptPacket(run=run, user=AUTHORITY), world.deps)
    assert adopted.ok, adopted.message
    async with world.uow.transaction(read_only=True) as tx:
        return run, [r for r in await tx.outbox.for_run(run) if r.state == "pending"]
