"""From a late report to the proposed-packet line in the war room: how long people wait to see it.

A chained plan of 200 checkpoints. Each sample reports the first checkpoint late (a different time
each sample, so each is a new proposal superseding the last), then drains the outbox with the
dispatcher over real HTTP to the Slack stand-in. The time is from calling `report_late` to the
stand-in receiving the channel's `packet_proposed_line` message.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import timedelta

from benchmarks._world import ENG, WINDOW_START, chained_plan, make_world, quiet, started_run
from bot.dispatcher import Dispatcher, make_client
from bot.outbox_port import StoreOutbox
from handlers import commands as c
from handlers.resequence import report_late
from tests.slack_standin import SlackStandin

SIZE = 200
SAMPLES = 50


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


async def _measure() -> tuple[list[float], list[float]]:
    world = await make_world()
    plan = chained_plan(SIZE, plan_id="readiness", one_role_each=False)
    try:
        run = await started_run(world, plan)
        async with SlackStandin() as slack:
            client = make_client(token=slack.token, base_url=slack.base_url)
            outbox = StoreOutbox(world.uow)
            dispatcher = Dispatcher(client=client, outbox=outbox, find_target=outbox.find_target)
            await dispatcher.drain(now_fn=world.clock.now)
            samples: list[float] = []
            handler: list[float] = []
            for i in range(SAMPLES):
                world.clock.advance(timedelta(seconds=10))
                seen = len(slack.calls())
                began = time.monotonic()
                outcome = await report_late(
                    c.ReportLate(
                        run=run,
                        user=ENG,
                        checkpoint="cp-0",
                        until=WINDOW_START + timedelta(minutes=60 + i),
                        reason="replication slow",
                    ),
                    world.deps,
                )
                assert outcome.ok, outcome.message
                handler.append((time.monotonic() - began) * 1000)
                await dispatcher.drain(now_fn=world.clock.now)
                arrived = [
                    call.at
                    for call in slack.calls()[seen:]
                    if call.ok
                    and call.body.get("channel") == plan["channel"]
                    and "proposed" in str(call.body.get("text", "")).lower()
                ]
                assert arrived, "no proposed line reached the stand-in"
                samples.append((arrived[0] - began) * 1000)
        return samples, handler
    finally:
        await world.close()


def run() -> None:
    quiet()
    samples, handler = asyncio.run(_measure())
    print(f"late_to_proposal_p50_ms: {statistics.median(samples):.1f}")
    print(f"late_to_proposal_p99_ms: {_percentile(samples, 99):.1f}")
    print(f"late_to_proposal_max_ms: {max(samples):.1f}")
    print(f"late_report_handler_p50_ms: {statistics.median(handler):.1f}")
