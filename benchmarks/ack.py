"""How fast the bot acknowledges `/cutover status` and a Release click, next to a bare Bolt app
that acks and answers through response_url; and its memory.

Both servers run on 127.0.0.1 against the Slack stand-in, in one run: the real bot (built by
`bot.wiring.build`, serving 100 active runs from SQLite, signature checks and all) and a bare Bolt
`AsyncApp` (Bolt's defaults) whose `/cutover` and Release listeners call `ack()` and then
`respond()` with a short text, the floor issue #15 sets. Each gets 1,000 signed commands, then
1,000 signed clicks, at concurrency 50; the time is from sending a request to its HTTP answer (the
ack), which is what Slack's 3-second limit is about. Every round waits for its response_url
answers before the next begins, so no round's leftover work slows the next. The ratio of p99s is
the price of the bot's own work before the ack (the inbox row among it) and beside it.

The measurement runs in a child process so that the peak RSS (VmHWM, `_peak_rss_mb`) is the bot's
serving 100 runs, not whatever the other benchmarks left in this process. The load generator runs
in the same process as the servers (2 cores): it costs both servers alike.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from typing import Any

REQUESTS = 1000
CONCURRENCY = 50
ACTIVE_RUNS = 100
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not `getrusage`'s ru_maxrss: Linux carries that across
    execve, so a child forked from a parent that grew (`make bench` runs every benchmark first)
    would report the parent's size."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def _replies(slack: Any, prefix: str, count: int, *, timeout: float = 45.0) -> int:
    """Wait until `count` response_url replies of this round arrived (or `timeout`); how many did."""
    deadline = time.monotonic() + timeout
    while True:
        arrived = sum(1 for i in range(count) if slack.responses(f"{prefix}{i}"))
        if arrived >= count or time.monotonic() > deadline:
            return arrived
        await asyncio.sleep(0.05)


def _status(slack: Any, channels: list[str], i: int, prefix: str) -> Any:
    from tests import signing

    return signing.signed_slash_command(
        secret=SECRET,
        text="status",
        user_id="U0ENG1",
        user_name="eng1",
        channel_id=channels[i % len(channels)],
        response_url=slack.response_url(f"{prefix}{i}"),
    )


def _click(targets: list[tuple[str, str, str, int]]) -> Any:
    """A Release click builder over (channel, run, hold, version) targets, round robin."""
    from bot.ids import ActionId, ButtonValue
    from tests import signing

    def build(slack: Any, _channels: list[str], i: int, prefix: str) -> Any:
        channel, run, hold, version = targets[i % len(targets)]
        return signing.signed_block_actions(
            secret=SECRET,
            action_id=ActionId.RELEASE_HOLD.value,
            value=ButtonValue(run=run, hold=hold, v=version).encode(),
            user_id="U0REL1",
            channel_id=channel,
            response_url=slack.response_url(f"{prefix}{i}"),
        )

    return build


async def _load(
    url: str, slack: Any, channels: list[str], *, prefix: str, count: int = REQUESTS, build: Any = _status
) -> tuple[list[float], int]:
    import aiohttp

    times: list[float] = []
    failures = 0
    slots = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as http:

        async def one(i: int) -> None:
            nonlocal failures
            signed = build(slack, channels, i, prefix)
            async with slots:
                began = time.perf_counter()
                async with http.post(url, data=signed.body, headers=signed.headers) as response:
                    await response.read()
                    status = response.status
                times.append((time.perf_counter() - began) * 1000)
            if status != 200:
                failures += 1

        await asyncio.gather(*(one(i) for i in range(count)))
    return times, failures


async def _serve(app: Any) -> tuple[Any, str]:
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"


async def _child() -> dict[str, str]:
    from slack_bolt.async_app import AsyncApp

    from benchmarks._world import WINDOW_START, gated_plan, make_world, started_run
    from benchmarks.gate_ticks import _clone, _names
    from bot.actuators import LogActuator
    from bot.clock import SimulatedClock
    from bot.dispatcher import make_client
    from bot.settings import Settings
    from bot.wiring import build
    from tests.slack_standin import SlackStandin

    # 100 active runs, each in its own channel (as in benchmarks.gate_ticks).
    setup = await make_world(fast_writes=True)
    plan_id, channel = _names(0)
    await started_run(setup, gated_plan(plan_id=plan_id, channel=channel))
    await setup.close(keep_files=True)
    _clone(setup.url.split("///", 1)[1], ACTIVE_RUNS - 1)
    channels = [_names(i)[1] for i in range(ACTIVE_RUNS)]
    plans = tempfile.mkdtemp(prefix="cutover-bench-plans-")
    results: dict[str, str] = {}
    async with SlackStandin() as slack:
        settings = Settings(
            slack_bot_token=slack.token,
            slack_signing_secret=SECRET,
            slack_api_url=slack.base_url,
            database_url=setup.url,
            cutover_plans_dir=plans,
        )
        actuator = LogActuator()
        bot = await build(
            settings,
            clock=SimulatedClock(WINDOW_START + timedelta(minutes=2)),
            actuator_for=lambda _p: actuator,
        )
        await bot.start(dispatch_loop=False, startup_ticks=False)
        bot_runner, bot_url = await _serve(bot.web_app)

        bare = AsyncApp(signing_secret=SECRET, client=make_client(token=slack.token, base_url=slack.base_url))

        @bare.command("/cutover")
        async def ack_and_answer(ack: Any, respond: Any) -> None:
            await ack()
            await respond(text="No active cutover run in this channel.", response_type="ephemeral")

        @bare.action("release_hold")
        async def ack_and_answer_click(ack: Any, respond: Any) -> None:
            await ack()
            await respond(text="Hold released.", response_type="ephemeral", replace_original=False)

        # An open hold in every run, for the Release clicks (the first click per run releases it,
        # the rest are refused "already released" and ledgered: every click writes).
        from handlers.commands import OpenHold
        from handlers.holds import open_hold

        targets: list[tuple[str, str, str, int]] = []
        async with bot.uow.transaction(read_only=True) as tx:
            active = await tx.runs.active()
        for row in active:
            opened = await open_hold(OpenHold(run=row.run_id, user="U0REL1", reason="bench: hold"), bot.deps)
            if opened.ok:
                targets.append(
                    (row.channel, row.run_id, str(opened.data["hold"]), int(opened.current_version or 1))
                )

        bare_runner, bare_url = await _serve(bare.web_app())
        try:
            # The bot first, the bare app after: the peak RSS is read between the two, so it is the
            # bot's serving (with the load generator and the stand-in), not the bare app's own
            # thousand response_url calls. Each round's answers (response_url) arrive before the
            # next round starts, so that work does not slow the next round down.
            await _load(bot_url, slack, channels[:5], prefix="warm", count=100)
            await _replies(slack, "warm", 100)
            began = time.perf_counter()
            bot_times, bot_failed = await _load(bot_url, slack, channels, prefix="bot")
            replied = await _replies(slack, "bot", REQUESTS)
            all_replied = time.perf_counter() - began
            click = _click(targets)
            bot_clicks, bot_click_failed = await _load(bot_url, slack, channels, prefix="click", build=click)
            clicked = await _replies(slack, "click", REQUESTS)
            rss_mb = _peak_rss_mb()
            await _load(bare_url, slack, channels[:5], prefix="bare-warm", count=100)
            await _replies(slack, "bare-warm", 100)
            bare_times, bare_failed = await _load(bare_url, slack, channels, prefix="bare")
            bare_replied = await _replies(slack, "bare", REQUESTS)
            bare_clicks, _ = await _load(bare_url, slack, channels, prefix="bare-click", build=click)
            bare_clicked = await _replies(slack, "bare-click", REQUESTS)
        finally:
            await bare_runner.cleanup()
            await bot_runner.cleanup()
            await bot.stop()
            await setup.close()
    bot_p99, bare_p99 = _percentile(bot_times, 99), _percentile(bare_times, 99)
    results.update(
        {
            "ack_bot_p50_ms": f"{statistics.median(bot_times):.1f}",
            "ack_bot_p99_ms": f"{bot_p99:.1f}",
            "ack_bare_bolt_p50_ms": f"{statistics.median(bare_times):.1f}",
            "ack_bare_bolt_p99_ms": f"{bare_p99:.1f}",
            "ack_p99_ratio_bot_to_bare": f"{bot_p99 / bare_p99:.2f}",
            "ack_bot_non_200": str(bot_failed),
            "status_replies_received": f"{replied}/{REQUESTS}",
            "status_all_replies_s": f"{all_replied:.2f}",
            "ack_bare_non_200": str(bare_failed),
            "bare_status_replies_received": f"{bare_replied}/{REQUESTS}",
            "click_runs_with_open_hold": str(len(targets)),
            "click_bot_p50_ms": f"{statistics.median(bot_clicks):.1f}",
            "click_bot_p99_ms": f"{_percentile(bot_clicks, 99):.1f}",
            "click_bare_bolt_p50_ms": f"{statistics.median(bare_clicks):.1f}",
            "click_bare_bolt_p99_ms": f"{_percentile(bare_clicks, 99):.1f}",
            "click_p99_ratio_bot_to_bare": f"{_percentile(bot_clicks, 99) / _percentile(bare_clicks, 99):.2f}",  # noqa: E501
            "click_bot_non_200": str(bot_click_failed),
            "click_replies_received": f"{clicked}/{REQUESTS}",
            "bare_click_replies_received": f"{bare_clicked}/{REQUESTS}",
            "serving_100_runs_peak_rss_mb": f"{rss_mb:.1f}",
        }
    )
    return results


def run() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.ack", "--child"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    if child.returncode != 0:
        print(f"ack_error: child exited {child.returncode}: {child.stderr.strip().splitlines()[-1:]}")
        return
    sys.stdout.write(child.stdout)
    # Listener failures the bot logged while serving (e.g. its database pool exhausted).
    failures = [
        line for line in child.stderr.splitlines() if line.startswith("Failed to run listener function")
    ]
    print(f"ack_bot_listener_failures: {len(failures)}")


if __name__ == "__main__":
    if "--child" in sys.argv:
        import logging

        logging.basicConfig(level=logging.ERROR)
        for name, value in asyncio.run(_child()).items():
            print(f"{name}: {value}")
    else:
        run()
