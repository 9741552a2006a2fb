"""The Alertmanager path for real: exporter -> Prometheus rule -> Alertmanager -> the bot's /alertmanager.

Everything but the clock and Slack is real: an exporter on 127.0.0.1 whose value the test flips,
Prometheus scraping it every second with an alerting rule (`for: 0s`), Alertmanager routing the
alert with a bearer token to the served bot (tests/bot_harness.py), and the bot's use cases on
SQLite. Skipped without the binaries, failed under REQUIRE_INTEGRATION=1 (.ci/run).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot import metrics
from tests.alertmanager_harness import alertmanager_binary, running_alertmanager
from tests.bot_harness import BRIDGE, BotHarness, bot_world, serving, wait_until
from tests.prometheus_harness import Exporter, PrometheusServer, prometheus_binary

pytestmark = [pytest.mark.prometheus]

TOKEN = "am-3b9d7e21c0f4"
METRIC = "cutover_order_write_errors_ratio"
ENG1, REL1, RISK1, DBA1 = "U0ENG1", "U0REL1", "U0RISK1", "U0DBA1"
RULES = f"""\
groups:
  - name: cutover-gates
    interval: 1s
    rules:
      - alert: OrderWriteErrors
        expr: {METRIC} > 0.01
        for: 0s
        labels: {{cutover_plan: bridge, cutover_gate: error-rate}}
        annotations: {{summary: "order write errors at {{{{ $value }}}}", value: "{{{{ $value }}}}"}}
"""
ARRIVAL_TIMEOUT = 45.0


class Stack:
    def __init__(self, harness: BotHarness, exporter: Exporter, prometheus: PrometheusServer) -> None:
        self.h = harness
        self.exporter = exporter
        self.prometheus = prometheus


@pytest.fixture
async def stack(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Stack]:
    prometheus_bin, alertmanager_bin = prometheus_binary(), alertmanager_binary()
    assert prometheus_bin and alertmanager_bin
    exporter = Exporter()
    exporter.set(METRIC, 0.001)
    await exporter.start()
    try:
        async with bot_world(tmp_path, sqlite_template) as factory:
            factory.settings = factory.settings.model_copy(
                update={"cutover_alertmanager_token": SecretStr(TOKEN)}
            )
            async with serving(factory) as h:
                webhook = h.url.replace("/slack/events", "/alertmanager")
                workdir = tmp_path / "alerting"
                workdir.mkdir()
                async with running_alertmanager(workdir, webhook=webhook, token=TOKEN) as alertmanager:
                    prometheus = PrometheusServer(
                        prometheus_bin,
                        workdir,
                        targets=[exporter.target],
                        rules=RULES,
                        alertmanager=alertmanager.target,
                    )
                    try:
                        await prometheus.start()
                        yield Stack(h, exporter, prometheus)
                    finally:
                        await prometheus.stop()
    finally:
        await exporter.stop()


async def _canary_soaking(h: BotHarness) -> str:
    assert (await h.command("open bridge", user=ENG1)).ok
    run = await h.run_in(BRIDGE)
    for user in (REL1, RISK1):
        assert (await h.command("signoff", user=user)).ok
    h.clock.advance(timedelta(minutes=5))
    assert (await h.command("start", user=ENG1)).ok
    h.clock.advance(timedelta(minutes=10))
    assert (await h.command("done drain-queue", user=ENG1)).ok
    assert (await h.command("done schema-check", user=DBA1)).ok
    assert (await h.command("release go-decision", user=REL1)).ok
    await h.bot.scheduler.tick(run)  # check before moving: read, then shifted
    assert [(s.checkpoint, s.percent) for s in h.actuator.shifts] == [("canary", 5)]
    await h.drain()
    return run


async def _state(h: BotHarness, run: str) -> str:
    async with h.bot.uow.transaction(read_only=True) as tx:
        row = await tx.runs.get(run)
    assert row is not None
    return row.state


def _alerts(outcome: str) -> float:
    return metrics.REGISTRY.get_sample_value("cutover_alerts_total", {"outcome": outcome}) or 0.0


async def test_an_alert_that_fires_in_prometheus_reaches_the_bot_through_alertmanager_and_holds_the_run(
    stack: Stack,
) -> None:
    h = stack.h
    run = await _canary_soaking(h)
    posted = len(h.slack.messages(BRIDGE))
    ignored = _alerts("ignored")
    assert await _state(h, run) == "running"

    stack.exporter.set(METRIC, 0.2)  # order writes start failing
    flipped = time.monotonic()
    kinds: list[str] = []

    async def arrived() -> bool:
        nonlocal kinds
        kinds = await h.ledger_kinds(run)
        return "gate_failed" in kinds

    deadline = flipped + ARRIVAL_TIMEOUT
    while not await arrived():
        assert time.monotonic() < deadline, (
            f"no alert reached the bot in {ARRIVAL_TIMEOUT}s; prometheus log:\n{stack.prometheus.log_tail()}"
        )
        await asyncio.sleep(0.05)

    assert await _state(h, run) == "held"
    assert kinds.count("alert_received") == 1
    assert [(s.checkpoint, s.percent) for s in h.actuator.shifts] == [("canary", 5)]  # nothing moved
    await h.drain()
    told = [m.text for m in h.slack.messages(BRIDGE)[posted:]]
    assert any(t.startswith("Gate error-rate failed on canary") for t in told), told

    # Resolved: Alertmanager says so, and it counts as nothing.
    stack.exporter.set(METRIC, 0.001)
    await wait_until(lambda: _alerts("ignored") > ignored, what="the resolved notification", timeout=30)
    assert (await h.ledger_kinds(run)).count("alert_received") == 1
    assert await _state(h, run) == "held"
