"""The bot is killed with SIGKILL in the middle of a 300-person fan-out and started again.

The fan-out is queued through the real use cases on a SQLite file (a late report on the first of
300 chained checkpoints, each owned by its own person, then the adoption: one delta DM each).
Then a real child process (tests/crash_child.py) builds the bot on that file with
`bot.wiring.build`, pointed at the Slack stand-in running here on 127.0.0.1 and slowed down so
the fan-out takes a while, and sends the outbox in the serve loop. The stand-in kills the child
with SIGKILL from inside its request handler, at the moment it answers the 100th DM: the child
never reads that answer, and whatever else it had in flight is lost with it, some of it already
delivered. A second child on the same file takes over the dead sender's claimed rows once their
lease runs out (a two-second lease here, `StoreOutbox(uow, lease=...)`) and sends the rest.

What must hold: every one of the 300 people got their DM, every row ends `sent`, and the only
notices delivered twice are ones the killed process had in flight.

The bound asserted, and why. "In flight at the kill" is what the store says right after it: the
rows in state `sending`, claimed by the dead process and never recorded as sent. The dispatcher
claims up to 50 rows at a time (its batch), so that is at most 50. Duplicates must be exactly the
in-flight rows that Slack had already processed (delivered before the kill, or still being
answered by the stand-in as the child died), each repeated once; in-flight rows Slack had not
seen go once; at least one duplicate is certain, the DM whose answer the kill cut off. The
number of duplicates is *not* bounded by the 8 requests the dispatcher has open at once: a lane
gives its HTTP slot back before it records the send in a transaction of its own, and with
SQLite writes queueing behind one writer, a few answered rows are still unrecorded when the
process dies (9 or 10 duplicates are typical here, with never more than 8 requests open, which
is asserted too). At-least-once delivery allows those and no others.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks._world import AUTHORITY, WINDOW_START, World, chained_plan, started_run
from bot.actuators import LogActuator
from bot.clock import SimulatedClock
from bot.dispatcher import Dispatcher, make_client
from bot.outbox_port import StoreOutbox
from bot.settings import Settings
from bot.telemetry.simulated import SimulatedTelemetry
from bot.wiring import build_deps
from handlers import commands as c
from handlers.adoption import adopt_packet
from handlers.resequence import report_late
from packets.plan import Plan
from store.db import make_engine
from store.uow import UnitOfWork
from tests.bot_harness import REPO, wait_until
from tests.slack_standin import SlackStandin

PEOPLE = 300
KILL_AT_DM = 100
LEASE_S = 2.0
BATCH = 50  # Dispatcher's default claim batch
CONCURRENCY = 8  # Settings.dispatch_concurrency's default: HTTP requests at once
CHILD_LIMIT_S = 60.0


class KillingStandin(SlackStandin):
    """The stand-in that SIGKILLs `victim` as it answers the `kill_at`-th delivered DM."""

    def __init__(self, *, kill_at: int) -> None:
        super().__init__()
        self.kill_at = kill_at
        self.victim: int | None = None
        self.dms = 0
        self.killed_after: int | None = None  # index into calls() at the kill

    @property
    def answering(self) -> int:
        """Requests the stand-in is still working on (the killed child's among them)."""
        return self._in_flight

    def _answer(
        self, method: str, token: str | None, body: dict[str, Any], arrived: float
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        status, answer, headers = super()._answer(method, token, body, arrived)
        is_dm = method == "chat.postMessage" and str(body.get("channel", "")).startswith("U")
        if is_dm and status == 200 and answer and answer.get("ok"):
            self.dms += 1
            if self.dms == self.kill_at and self.victim is not None and self.killed_after is None:
                os.kill(self.victim, signal.SIGKILL)
                self.killed_after = len(self.calls())
        return status, answer, headers


def _world_on(path: Path) -> World:
    url = f"sqlite+aiosqlite:///{path}"
    uow = UnitOfWork(make_engine(url))
    clock = SimulatedClock(WINDOW_START)
    actuator = LogActuator()

    def telemetry_for(plan: Plan) -> SimulatedTelemetry:
        return SimulatedTelemetry(plan)

    deps = build_deps(uow=uow, clock=clock, telemetry_for=telemetry_for, actuator_for=lambda _p: actuator)
    return World(deps=deps, uow=uow, clock=clock, workdir=str(path.parent), url=url)


async def _queue_the_fan_out(world: World, slack: SlackStandin) -> tuple[str, set[str], set[int]]:
    """A started run whose adoption queued one DM per person; (run, DM recipients, row ids queued).

    The opening's own notices are sent first, here, so that v1's card is in the channel with its
    ts recorded (the adoption's `packet_superseded` notice updates it)."""
    run = await started_run(world, chained_plan(PEOPLE))
    outbox = StoreOutbox(world.uow)
    client = make_client(token=slack.token, base_url=slack.base_url)
    opening = await Dispatcher(client=client, outbox=outbox, find_target=outbox.find_target).drain(
        now_fn=world.clock.now
    )
    assert opening.sent > 0 and opening.failed == 0 and opening.retried == 0
    world.clock.advance(timedelta(minutes=1))
    late = await report_late(
        c.ReportLate(run=run, user="U0P0000", checkpoint="cp-0", until=WINDOW_START + timedelta(hours=1)),
        world.deps,
    )
    assert late.ok, late.message
    adopted = await adopt_packet(c.AdoptPacket(run=run, user=AUTHORITY), world.deps)
    assert adopted.ok, adopted.message
    async with world.uow.transaction(read_only=True) as tx:
        rows = [r for r in await tx.outbox.for_run(run) if r.state == "pending"]
    dms = {r.recipient for r in rows if r.kind == "delta_dm"}
    assert len(dms) == PEOPLE
    return run, dms, {r.id for r in rows}


def _child(
    mode: str, *, world: World, slack: SlackStandin, wall_anchor: float, sim_anchor: str, log: Path
) -> subprocess.Popen[bytes]:
    # Nothing of the bot's configuration leaks in from the environment the tests run in.
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env["PYTHONPATH"] = str(REPO)
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.crash_child",
                f"--{mode}",
                "--database-url",
                world.url,
                "--slack-api-url",
                slack.base_url,
                "--token",
                slack.token,
                "--lease",
                str(LEASE_S),
                "--sim-anchor",
                sim_anchor,
                "--wall-anchor",
                repr(wall_anchor),
                "--limit",
                str(CHILD_LIMIT_S),
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _exit_of(process: subprocess.Popen[bytes], *, timeout: float, log: Path) -> int:
    """Wait for the process without blocking the loop (the stand-in serves on it)."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"child still running after {timeout} s:\n{log.read_text()[-3000:]}")
        await asyncio.sleep(0.02)
    return process.returncode


async def _rows(world: World, run: str) -> list[Any]:
    async with world.uow.transaction(read_only=True) as tx:
        return await tx.outbox.for_run(run)


async def test_a_bot_killed_mid_fan_out_and_started_again_delivers_every_dm_and_repeats_only_those_in_flight(
    tmp_path: Path,
    sqlite_template: Path,
) -> None:
    database = tmp_path / "cutover.db"
    shutil.copyfile(sqlite_template, database)
    world = _world_on(database)
    try:
        slack = KillingStandin(kill_at=KILL_AT_DM)
        async with slack:
            run, dms, queued = await _queue_the_fan_out(world, slack)
            before = len(slack.calls())
            sim_anchor, wall_anchor = world.clock.now().isoformat(), time.time()
            slack.slow(0.03)  # 8 at a time, 300 DMs: about a second of fan-out, not a blink
            first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
            first = _child(
                "forever",
                world=world,
                slack=slack,
                wall_anchor=wall_anchor,
                sim_anchor=sim_anchor,
                log=first_log,
            )
            slack.victim = first.pid
            assert await _exit_of(first, timeout=CHILD_LIMIT_S, log=first_log) == -signal.SIGKILL, (
                first_log.read_text()[-3000:]
            )
            assert slack.killed_after is not None, "the child died on its own"

            # Right after the kill: what the dead sender had claimed and not recorded.
            # Requests the child wrote just before dying may still sit in the socket: its
            # connections close only once the stand-in has read (and answered) all of them.
            await wait_until(
                lambda: not slack.answering and slack.open_connections == 0,
                what="the stand-in to read and answer everything the killed child sent",
            )
            assert slack.max_in_flight <= CONCURRENCY
            at_kill = await _rows(world, run)
            in_flight = {r.id: r.recipient for r in at_kill if r.state == "sending"}
            sent_before = sum(1 for r in at_kill if r.state == "sent" and r.id in queued)
            delivered_before = Counter(
                call.body.get("channel")
                for call in slack.calls()[before:]
                if call.ok and call.method == "chat.postMessage"
            )
            assert KILL_AT_DM <= sum(delivered_before[u] for u in dms) < PEOPLE  # killed mid-fan-out
            assert 0 < len(in_flight) <= BATCH, in_flight

            slack.slow(0.0)
            second = _child(
                "until-settled",
                world=world,
                slack=slack,
                wall_anchor=wall_anchor,
                sim_anchor=sim_anchor,
                log=second_log,
            )
            assert await _exit_of(second, timeout=CHILD_LIMIT_S + 10, log=second_log) == 0, (
                second_log.read_text()[-3000:]
            )
            report = json.loads(second_log.read_text().strip().splitlines()[-1])
            calls = slack.calls()[before:]

        rows = await _rows(world, run)
    finally:
        await world.close(keep_files=True)

    # Every row is sent; every person got their DM.
    assert {r.id: (r.kind, r.state, r.last_error) for r in rows if r.state != "sent"} == {}
    assert report["settled"] and report["failed"] == 0
    assert report["sent"] == len(queued) - sent_before  # the second child sent exactly what was left
    delivered = Counter(
        call.body.get("channel") for call in calls if call.ok and call.method == "chat.postMessage"
    )
    assert {user for user in dms if delivered[user] == 0} == set()

    # Twice only what the killed process had in flight; nothing three times.
    # Each call carries its outbox row's id (two updates of the live card may say the same).
    ok_calls = Counter(call.body["metadata"]["event_payload"]["outbox_id"] for call in calls if call.ok)
    twice = {row: n for row, n in ok_calls.items() if n > 1}
    assert all(n == 2 for n in twice.values()), twice
    assert set(twice) <= set(in_flight), (twice, in_flight)
    duplicates = sum(n - 1 for n in twice.values())
    assert duplicates <= len(in_flight) <= BATCH, (duplicates, len(in_flight))
    # Exactly those: every in-flight row Slack had already processed was sent again, once; the
    # in-flight rows it had not seen were sent once. At least one: the DM whose answer the kill cut.
    processed_in_flight = {rid for rid, user in in_flight.items() if delivered_before[user] > 0}
    assert duplicates == len(processed_in_flight) >= 1, (duplicates, len(processed_in_flight))
    assert sum(ok_calls.values()) == len(queued) + duplicates
