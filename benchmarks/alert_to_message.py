"""From a firing Alertmanager alert to the gate action's first Slack message in the war room.

The served bot (`bot.wiring.build`, its outbox dispatch loop running as in production) over
SQLite with `RUNS` active runs soaking their canary, each in its own channel and of its own plan
(as in `benchmarks.gate_ticks`). One at a time, `POST /alertmanager` carries a firing alert naming
a run's plan and its `lookup-latency` gate (on_fail: hold); the time is from sending the request to
the Slack stand-in recording the first `chat.postMessage` to that run's channel. Target: p99 under
500 ms.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from datetime import timedelta
from typing import Any

RUNS = 60
TOKEN = "bench-alertmanager-token"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
GATE = "lookup-latency"


def _alert(plan: str) -> str:
    return json.dumps(
        {
            "receiver": "cutover-bot",
            "status": "firing",
            "version": "4",
            "groupKey": '{}:{alertname="LookupLatency"}',
            "groupLabels": {"alertname": "LookupLatency"},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://127.0.0.1:9093",
            "truncatedAlerts": 0,
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "LookupLatency", "cutover_plan": plan, "cutover_gate": GATE},
                    "annotations": {"summary": "p95 lookup latency above 250 ms"},
                    "startsAt": "2026-11-24T21:20:03.157076123Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://127.0.0.1:9090/graph",
                    "fingerprint": "1a30ba71cca2921f",
                }
            ],
        }
    )


async def _first_post(slack: Any, channel: str, before: int, began: float) -> float | None:
    deadline = began + 10.0
    while time.perf_counter() < deadline:
        if len(slack.posted_to(channel)) > before:
            return (time.perf_counter() - began) * 1000
        await asyncio.sleep(0.002)
    return None


async def _measure() -> dict[str, str]:
    import aiohttp
    from aiohttp import web

    from benchmarks._world import WINDOW_START, gated_plan, make_world, quiet, started_run
    from benchmarks.gate_ticks import _clone, _names
    from bot.actuators import LogActuator
    from bot.clock import SimulatedClock
    from bot.settings import Settings
    from bot.wiring import build
    from tests.slack_standin import SlackStandin

    quiet()
    setup = await make_world(fast_writes=True)
    plan_id, channel = _names(0)
    await started_run(setup, gated_plan(plan_id=plan_id, channel=channel))
    await setup.close(keep_files=True)
    _clone(setup.url.split("///", 1)[1], RUNS - 1)
    times: list[float] = []
    missing = 0
    async with SlackStandin() as slack:
        settings = Settings(
            slack_bot_token=slack.token,
            slack_signing_secret=SECRET,
            slack_api_url=slack.base_url,
            database_url=setup.url,
            cutover_plans_dir=tempfile.mkdtemp(prefix="cutover-bench-plans-"),
            cutover_alertmanager_token=TOKEN,
        )
        actuator = LogActuator()
        bot = await build(
            settings,
            clock=SimulatedClock(WINDOW_START + timedelta(minutes=2)),
            actuator_for=lambda _p: actuator,
        )
        await bot.start(startup_ticks=False)
        runner = web.AppRunner(bot.web_app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/alertmanager"
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        try:
            async with aiohttp.ClientSession() as http:
                for i in range(RUNS):
                    plan, channel = _names(i)
                    before = len(slack.posted_to(channel))
                    began = time.perf_counter()
                    async with http.post(url, data=_alert(plan), headers=headers) as response:
                        await response.read()
                    took = await _first_post(slack, channel, before, began)
                    if took is None:
                        missing += 1
                    else:
                        times.append(took)
        finally:
            await runner.cleanup()
            await bot.stop()
            await setup.close()
    ordered = sorted(times) or [float("nan")]
    return {
        "alert_to_first_message_p50_ms": f"{statistics.median(ordered):.1f}",
        "alert_to_first_message_p99_ms": f"{ordered[min(len(ordered) - 1, round(0.99 * len(ordered)))]:.1f}",
        "alert_to_first_message_max_ms": f"{ordered[-1]:.1f}",
        "alert_runs_without_a_message": f"{missing}/{RUNS}",
    }


def run() -> None:
    for name, value in asyncio.run(_measure()).items():
        print(f"{name}: {value}")
