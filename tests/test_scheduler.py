"""The scheduler: gate ticks derived from the store, surviving restarts, failures and stalls.

Real bots built by `bot.wiring` (tests/bot_harness.py) on one database, SQLite and PostgreSQL; a
simulated clock for the domain and the real APScheduler in the test's event loop. Ticks are
called directly (the same guarded `Scheduler.tick` the jobs call) or fired by APScheduler itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import metrics
from bot.command_text import parse
from bot.intents import PlanSource, dispatch, run_text
from bot.scheduler import DISCOVER_JOB, JOB_DEFAULTS, RESYNC_JOB, tick_job_id
from bot.wiring import Bot
from handlers.commands import CheckGates
from handlers.gate_checks import check_gates_together
from handlers.ports import Measurement
from packets.plan import Plan
from tests.bot_harness import BRIDGE, BRIDGE_PLAN, WINDOW_START, BotFactory, bot_world, wait_until

ENG1, REL1, RISK1, DBA1 = "U0ENG1", "U0REL1", "U0RISK1", "U0DBA1"
HYPERCARE = """
hypercare:
  gates: [error-rate]
  cadence: [{every: 5m, until: 1h}, {every: 15m, until: 3h}]
"""


@pytest.fixture
async def world(tmp_path: Path, database_url: str) -> AsyncIterator[BotFactory]:
    """On SQLite and on PostgreSQL (tests/conftest.py: skipped without TEST_DATABASE_URL)."""
    async with bot_world(tmp_path, database_url) as factory:
        yield factory


def _add_plan(factory: BotFactory, name: str, channel: str, extra: str = "") -> None:
    text = BRIDGE_PLAN.replace("plan: bridge\n", f"plan: {name}\n").replace(BRIDGE, channel) + extra
    (Path(factory.settings.cutover_plans_dir) / f"{name}.yaml").write_text(text, encoding="utf-8")


async def _say(bot: Bot, user: str, channel: str, text: str) -> str:
    outcome = await run_text(
        parse(text), user=user, channel=channel, deps=bot.deps, plans=PlanSource(bot.plans_dir)
    )
    assert outcome.ok, (text, outcome.message)
    return outcome.message


async def _open(bot: Bot, plan: str, channel: str) -> str:
    await _say(bot, ENG1, channel, f"open {plan}")
    await _say(bot, REL1, channel, "signoff")
    await _say(bot, RISK1, channel, "signoff")
    async with bot.uow.transaction(read_only=True) as tx:
        row = await tx.runs.active_in_channel(channel)
    assert row is not None
    return row.run_id


async def _to_canary(bot: Bot, channel: str) -> None:
    """From ready to the canary's soak: start, both preflight checkpoints done, go released."""
    await _say(bot, ENG1, channel, "start")
    await _say(bot, ENG1, channel, "done drain-queue")
    await _say(bot, DBA1, channel, "done schema-check")
    await _say(bot, REL1, channel, "release go-decision")


async def _slots(bot: Bot, run: str) -> list[int]:
    async with bot.uow.transaction(read_only=True) as tx:
        rows = await tx.gate_results.for_run(run)
    return [r.slot for r in rows if r.checkpoint == "canary" and r.gate == "error-rate"]


async def _state(bot: Bot, run: str) -> str:
    async with bot.uow.transaction(read_only=True) as tx:
        row = await tx.runs.get(run)
    assert row is not None
    return row.state


def _interval(bot: Bot, run: str) -> timedelta | None:
    job = bot.scheduler.job(tick_job_id(run))
    return None if job is None else job.trigger.interval


def _tick_errors() -> float:
    return metrics.REGISTRY.get_sample_value("cutover_gate_tick_errors_total") or 0.0


async def _eventually(read: Callable[[], Awaitable[object]], expected: object, timeout: float = 10.0) -> None:
    """Until `await read()` gives `expected` (a tick fired by APScheduler commits on its own time)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (value := await read()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"still {value!r}, not {expected!r}"
        await asyncio.sleep(0.01)


class CountingTelemetry:
    """Always the same value; counts measurements, and can be made to wait."""

    def __init__(self, value: float | None = 0.001) -> None:
        self.value = value
        self.calls = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def measure(self, *, gate: str, query: str, at: datetime) -> Measurement:
        self.calls += 1
        await self.gate.wait()
        return Measurement(self.value, "" if self.value is not None else "no series")


class BrokenTelemetry:
    async def measure(self, *, gate: str, query: str, at: datetime) -> Measurement:
        raise RuntimeError("the telemetry backend fell over")


# -- jobs from the store ------------------------------------------------------------------------


async def test_at_start_up_every_active_run_gets_a_tick_job_and_one_immediate_tick(world: BotFactory) -> None:
    _add_plan(world, "bridge-b", "C0BRIDGEB")
    _add_plan(world, "bridge-c", "C0BRIDGEC")
    first = await world.build()
    await first.start(dispatch_loop=False, startup_ticks=False)
    running = await _open(first, "bridge", BRIDGE)
    waiting = await _open(first, "bridge-b", "C0BRIDGEB")
    finished = await _open(first, "bridge-c", "C0BRIDGEC")
    world.clock.set(WINDOW_START)
    await _to_canary(first, BRIDGE)
    await _say(first, ENG1, "C0BRIDGEC", "start")
    await _say(first, ENG1, "C0BRIDGEC", "rollback all abandon")
    assert await _state(first, finished) == "rolled_back"
    await first.stop()

    bot = await world.build()
    await bot.start(dispatch_loop=False)
    await bot.scheduler.startup_ticks()

    assert sorted(j.id for j in bot.scheduler.tick_jobs()) == sorted(
        [tick_job_id(running), tick_job_id(waiting)]
    )
    assert _interval(bot, running) == timedelta(minutes=1)  # the plan's gate_policy.interval
    assert bot.scheduler.job(RESYNC_JOB) is not None
    for job in bot.scheduler.tick_jobs():
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (
            JOB_DEFAULTS["coalesce"],
            JOB_DEFAULTS["max_instances"],
            JOB_DEFAULTS["misfire_grace_time"],
        )
        assert job.next_run_time > datetime.now(UTC)  # the immediate tick was the start-up one
    assert await _slots(bot, running) == [0]  # the start-up tick measured the canary once


async def test_a_run_gets_its_job_when_opened_and_loses_it_when_it_ends(world: BotFactory) -> None:
    bot = await world.build()
    await bot.start(dispatch_loop=False)
    run = await _open(bot, "bridge", BRIDGE)
    await bot.scheduler.settle()
    assert _interval(bot, run) == timedelta(minutes=1)

    world.clock.set(WINDOW_START)
    await _say(bot, ENG1, BRIDGE, "start")
    await _say(bot, ENG1, BRIDGE, "rollback all called off")
    await bot.scheduler.settle()

    assert _interval(bot, run) is None
    assert await bot.scheduler.resync() == []


async def test_a_run_in_hypercare_is_ticked_at_its_cadence_until_hypercare_ends(
    world: BotFactory,
) -> None:
    _add_plan(world, "bridge-care", "C0CARE", HYPERCARE)
    telemetry = CountingTelemetry()
    bot = await world.build(telemetry_for=lambda _plan: telemetry)
    await bot.start(dispatch_loop=False, startup_ticks=False)
    run = await _open(bot, "bridge-care", "C0CARE")
    world.clock.set(WINDOW_START)
    await _to_canary(bot, "C0CARE")
    for _ in range(15):
        await bot.scheduler.tick(run)
        if await _state(bot, run) == "hypercare":
            break
        world.clock.advance(timedelta(minutes=1))
    assert await _state(bot, run) == "hypercare"
    await bot.scheduler.settle()
    assert _interval(bot, run) == timedelta(minutes=5)

    world.clock.advance(timedelta(hours=1, minutes=1))
    outcome = await bot.scheduler.tick(run)
    await bot.scheduler.settle()
    assert outcome is not None and "hypercare" in outcome.message
    assert _interval(bot, run) == timedelta(minutes=15)  # the cadence widened by itself

    world.clock.advance(timedelta(hours=2))
    await bot.scheduler.tick(run)
    await bot.scheduler.settle()
    assert await _state(bot, run) == "completed"
    assert _interval(bot, run) is None

    restarted = await world.build(telemetry_for=lambda _plan: telemetry)
    await restarted.start(dispatch_loop=False)
    assert restarted.scheduler.tick_jobs() == []


# -- restarts, failures, stalls -----------------------------------------------------------------


async def test_a_restart_mid_soak_resumes_checks_without_a_lost_or_a_duplicate_slot(
    world: BotFactory,
) -> None:
    bot = await world.build()
    await bot.start(dispatch_loop=False)
    run = await _open(bot, "bridge", BRIDGE)
    world.clock.set(WINDOW_START)
    await _to_canary(bot, BRIDGE)
    await bot.scheduler.tick(run)
    world.clock.advance(timedelta(minutes=1))
    await bot.scheduler.tick(run)
    await bot.stop()  # down for a minute, in the middle of the canary's soak
    world.clock.advance(timedelta(minutes=1))

    bot = await world.build()
    await bot.start(dispatch_loop=False)
    await bot.scheduler.startup_ticks()  # catches up the slot that came due while down
    assert await _slots(bot, run) == [0, 1, 2]
    await bot.scheduler.tick(run)  # the same slot again: recorded once
    await bot.stop()

    bot = await world.build()  # and a restart inside a slot already checked
    await bot.start(dispatch_loop=False)
    await bot.scheduler.startup_ticks()
    world.clock.advance(timedelta(minutes=1))
    outcome = await bot.scheduler.tick(run)

    assert outcome is not None and outcome.ok, outcome
    assert await _slots(bot, run) == [0, 1, 2, 3]
    assert await _state(bot, run) == "running"


async def test_a_run_whose_telemetry_fails_does_not_stop_the_ticks_of_the_others(world: BotFactory) -> None:
    _add_plan(world, "bridge-b", "C0BRIDGEB")
    _add_plan(world, "bridge-c", "C0BRIDGEC")
    healthy, empty = CountingTelemetry(0.001), CountingTelemetry(None)

    def telemetry_for(plan: Plan) -> object:
        return {"bridge": BrokenTelemetry(), "bridge-b": empty}.get(plan.plan, healthy)

    bot = await world.build(telemetry_for=telemetry_for)  # type: ignore[arg-type]
    await bot.start(dispatch_loop=False, startup_ticks=False)
    runs = {}
    for plan, channel in [("bridge", BRIDGE), ("bridge-b", "C0BRIDGEB"), ("bridge-c", "C0BRIDGEC")]:
        runs[plan] = await _open(bot, plan, channel)
    world.clock.set(WINDOW_START)
    for channel in (BRIDGE, "C0BRIDGEB", "C0BRIDGEC"):
        await _to_canary(bot, channel)
    errors = _tick_errors()

    outcomes = await bot.scheduler.tick_all()

    assert outcomes[runs["bridge"]] is None  # raised: logged and counted, not propagated
    assert _tick_errors() == errors + 1
    assert await _slots(bot, runs["bridge"]) == []
    assert await _slots(bot, runs["bridge-b"]) == [0] and await _slots(bot, runs["bridge-c"]) == [0]
    assert await _state(bot, runs["bridge-b"]) == "held"  # no data counts as a failure: on_fail hold
    assert await _state(bot, runs["bridge-c"]) == "running"

    # The same through APScheduler: the failing job raises nothing, the next run still ticks.
    for run in runs.values():
        bot.scheduler.job(tick_job_id(run)).modify(next_run_time=datetime.now(UTC))  # type: ignore[union-attr]
    world.clock.advance(timedelta(minutes=1))
    bot.scheduler.wakeup()
    await wait_until(lambda: _tick_errors() == errors + 2, what="the broken tick")
    await _eventually(lambda: _slots(bot, runs["bridge-c"]), [0, 1])  # the healthy run's next tick


async def test_ticks_missed_while_the_loop_stalled_run_once_and_never_two_at_a_time(
    world: BotFactory,
) -> None:
    telemetry = CountingTelemetry()
    bot = await world.build(telemetry_for=lambda _plan: telemetry)
    await bot.start(dispatch_loop=False, startup_ticks=False)
    run = await _open(bot, "bridge", BRIDGE)
    world.clock.set(WINDOW_START)
    await _to_canary(bot, BRIDGE)
    await bot.scheduler.settle()
    job = bot.scheduler.job(tick_job_id(run))
    assert job is not None and job.trigger.interval == timedelta(minutes=1)

    # The loop was stuck for three and a half intervals: three run times went by.
    job.modify(next_run_time=datetime.now(UTC) - timedelta(minutes=3, seconds=30))
    bot.scheduler.wakeup()
    await wait_until(lambda: bot.scheduler.ticks_finished >= 1, what="the catch-up tick")
    await bot.scheduler.settle()
    await asyncio.sleep(0.05)  # room for any further (wrong) catch-up runs to show

    assert telemetry.calls == 1  # one gate, measured once: coalesced, not once per missed interval
    assert job.next_run_time > datetime.now(UTC)

    # A tick still measuring when the next one comes due: the next one is skipped, not stacked.
    telemetry.gate.clear()
    world.clock.advance(timedelta(minutes=1))
    job.modify(next_run_time=datetime.now(UTC))
    bot.scheduler.wakeup()
    await wait_until(lambda: telemetry.calls == 2, what="the slow tick")
    job.modify(next_run_time=datetime.now(UTC))
    bot.scheduler.wakeup()
    await asyncio.sleep(0.05)
    assert telemetry.calls == 2  # max_instances=1
    telemetry.gate.set()
    await _eventually(lambda: _slots(bot, run), [0, 1])
    assert telemetry.calls == 2


async def test_a_run_opened_on_a_replica_that_died_is_ticked_by_another_within_one_discovery(
    world: BotFactory,
) -> None:
    survivor = await world.build()
    await survivor.start(dispatch_loop=False, startup_ticks=False)  # knows of no run yet
    dead = await world.build()
    await dead.start(dispatch_loop=False, startup_ticks=False)
    run = await _open(dead, "bridge", BRIDGE)
    world.clock.set(WINDOW_START)
    await _to_canary(dead, BRIDGE)
    await dead.stop()  # the only replica that had scheduled the run
    assert survivor.scheduler.job(tick_job_id(run)) is None
    world.clock.set(WINDOW_START + timedelta(minutes=3))

    found = await survivor.scheduler.discover()

    assert found == [run]
    assert _interval(survivor, run) == timedelta(minutes=1)
    assert 3 in await _slots(survivor, run)  # checked at once, in the slot of now
    assert await survivor.scheduler.discover() == []  # known now: not ticked again out of turn
    discovery = survivor.scheduler.job(DISCOVER_JOB)
    assert discovery is not None and discovery.trigger.interval == timedelta(seconds=10)


async def _record_of(
    bot: Bot, run: str
) -> tuple[str, list[tuple[str, str, int, str, float | None]], list[str]]:
    """What a tick left of a run: its state, its readings and its ledger entries' kinds."""
    async with bot.uow.transaction(read_only=True) as tx:
        row = await tx.runs.get(run)
        readings = [
            (r.checkpoint, r.gate, r.slot, r.outcome, r.value) for r in await tx.gate_results.for_run(run)
        ]
        kinds = [e.kind for e in await tx.ledger.entries(run)]
    assert row is not None
    return row.state, sorted(readings), kinds


async def test_runs_ticked_together_end_exactly_as_runs_ticked_alone(world: BotFactory) -> None:
    # Four runs of one plan: two ticked together, two alone; in each pair one gate reads nothing.
    plans = {"a-ok": "C0AOK", "a-empty": "C0AEMPTY", "b-ok": "C0BOK", "b-empty": "C0BEMPTY"}
    for name, channel in plans.items():
        _add_plan(world, name, channel)
    healthy, empty = CountingTelemetry(0.001), CountingTelemetry(None)

    def telemetry_for(plan: Plan) -> object:
        return empty if plan.plan.endswith("empty") else healthy

    bot = await world.build(telemetry_for=telemetry_for)  # type: ignore[arg-type]
    await bot.start(dispatch_loop=False, startup_ticks=False)
    runs = {name: await _open(bot, name, channel) for name, channel in plans.items()}
    world.clock.set(WINDOW_START)
    for channel in plans.values():
        await _to_canary(bot, channel)

    for minute in range(3):
        together = await check_gates_together([runs["a-ok"], runs["a-empty"]], bot.deps)
        alone = [await dispatch(CheckGates(run=runs[name]), bot.deps) for name in ("b-ok", "b-empty")]
        assert set(together) == {runs["a-ok"], runs["a-empty"]}, f"minute {minute}: both were due"
        assert [o.message for o in together.values()] == [o.message for o in alone]
        world.clock.advance(timedelta(minutes=1))

    for first, second in (("a-ok", "b-ok"), ("a-empty", "b-empty")):
        assert await _record_of(bot, runs[first]) == await _record_of(bot, runs[second])
    state, readings, _ = await _record_of(bot, runs["a-empty"])
    assert state == "held" and readings[0][3] == "no-data", "the empty gate held its own run only"
    assert (await _record_of(bot, runs["a-ok"]))[0] == "running"


async def test_a_run_with_nothing_due_is_left_out_of_a_batch_and_ticked_alone(world: BotFactory) -> None:
    bot = await world.build(telemetry_for=lambda _plan: CountingTelemetry(0.001))  # type: ignore[arg-type,return-value]
    await bot.start(dispatch_loop=False, startup_ticks=False)
    run = await _open(bot, "bridge", BRIDGE)  # ready, not started: no gate is due

    assert await check_gates_together([run], bot.deps) == {}
    outcome = await bot.scheduler.tick(run)

    assert outcome is not None and outcome.ok and await _slots(bot, run) == []
