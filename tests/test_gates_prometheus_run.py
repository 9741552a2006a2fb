"""A run's gates against a real Prometheus: a failing gate holds, rolls back or freezes the run.

The bot is built by `bot.wiring` (so telemetry is the plan's Prometheus provider on the bot's
shared HTTP session), the run is driven through the use cases (open, sign off, start), and the
gate check is the scheduler's tick. Prometheus scrapes an exporter whose value the test sets
(tests/prometheus_harness.py): skipped without the binary, failed under REQUIRE_INTEGRATION=1.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from pydantic import SecretStr

from bot.clock import SimulatedClock
from bot.settings import Settings
from bot.wiring import Bot, build
from handlers import runs, shifts
from handlers.commands import EngineIntent, Move, OpenRun, SignOff
from tests.bot_harness import WINDOW_START
from tests.prometheus_harness import PrometheusStack, running_prometheus

pytestmark = [pytest.mark.prometheus, pytest.mark.asyncio(loop_scope="module")]

PLAN = """\
plan: gate-{action}
title: Card lookups move to the new service ({action} on a failed gate)
channel: {channel}
window: {{start: 2026-11-24T21:00:00-05:00, end: 2026-11-25T01:00:00-05:00}}
roles:
  release-authority: {{primary: U0REL1}}
  release-eng: {{primary: U0ENG1}}
authority:
  signoff: [release-authority]
  adopt_packets: [release-authority]
  start_and_rollback: [release-authority, release-eng]
telemetry: {{provider: prometheus, url: "{url}", timeout: 2s}}
gate_policy: {{interval: 1m, consecutive_passes: 3, no_data: fail}}
gates:
  success-ratio: {{query: "{metric}", pass: ">= 0.99", on_fail: {action}}}
actuator: {{kind: log}}
checkpoints:
  - {{id: canary, title: Shift cohort A, owner: release-eng,
     traffic: {{percent: 5, cohort: cohort-a}}, soak: 30m, gates: [success-ratio]}}
  - {{id: widen, title: Everyone, owner: release-eng, after: [canary],
     traffic: {{percent: 100, cohort: cohort-a}}, soak: 30m, gates: [success-ratio]}}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PrometheusStack]:
    async with running_prometheus(tmp_path_factory.mktemp("prometheus")) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def bot(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Bot]:
    database = tmp_path / "cutover.db"
    shutil.copyfile(sqlite_template, database)
    settings = Settings(
        slack_bot_token=SecretStr("xoxb-unused"),
        slack_signing_secret=SecretStr("unused"),
        slack_api_url="http://127.0.0.1:9/api/",  # nothing is sent to Slack here
        database_url=f"sqlite+aiosqlite:///{database}",
        cutover_plans_dir=str(tmp_path),
    )
    built = await build(settings, clock=SimulatedClock(WINDOW_START - timedelta(minutes=5)))
    try:
        yield built
    finally:
        await built.stop()


@pytest.mark.parametrize(
    ("action", "state"),
    [("hold", "held"), ("global_rollback", "rolled_back"), ("freeze", "frozen")],
)
async def test_a_gate_failing_in_prometheus_takes_the_plans_action_on_the_run(
    stack: PrometheusStack, bot: Bot, action: str, state: str
) -> None:
    metric = f"cutover_run_{action}_success_ratio"
    channel = f"C0GATE{action.upper().replace('_', '')}"
    plan = PLAN.format(action=action, channel=channel, url=stack.url, metric=metric)
    clock = bot.clock
    assert isinstance(clock, SimulatedClock)
    stack.exporter.set(metric, 0.999)
    await stack.prometheus.wait_for_value(metric, 0.999)

    opened = await runs.open_run(
        OpenRun(plan_text=plan, source=f"{action}.yaml", channel=channel, user="U0ENG1"), bot.deps
    )
    assert opened.ok, opened.message
    run = str(opened.run)
    signed = await runs.sign_off(SignOff(run=run, user="U0REL1", revision=opened.data["revision"]), bot.deps)
    assert signed.ok, signed.message
    clock.set(WINDOW_START)
    started = await runs.ask_engine(EngineIntent(run=run, user="U0ENG1", move=Move.START), bot.deps)
    assert started.ok and "running" in started.message, started.message

    passing = await bot.scheduler.tick(run)
    assert passing is not None and passing.ok and "failing" not in passing.message, passing
    assert await _state(bot, run) == "running"

    stack.exporter.set(metric, 0.42)
    await stack.prometheus.wait_for_value(metric, 0.42)
    clock.advance(timedelta(minutes=1))
    failing = await bot.scheduler.tick(run)

    assert failing is not None and "failing: success-ratio" in failing.message, failing
    await shifts.drain(bot.deps)  # a rollback's shifts go to the control plane after the commit
    assert await _state(bot, run) == state
    async with bot.uow.transaction(read_only=True) as tx:
        results = await tx.gate_results.for_run(run)
        alerts = [r for r in await tx.outbox.for_run(run) if r.kind == "gate_alert"]
    assert [(r.slot, r.outcome, r.value) for r in results] == [(0, "pass", 0.999), (1, "fail", 0.42)]
    assert len(alerts) == 1 and alerts[0].payload["action"] == action


async def _state(bot: Bot, run: str) -> str:
    async with bot.uow.transaction(read_only=True) as tx:
        row = await tx.runs.get(run)
    assert row is not None
    return row.state
