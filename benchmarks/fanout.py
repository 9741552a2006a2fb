"""How long a 300-person fan-out takes against Slack's rate limit, and whether any notice is lost or doubled.

A chained plan of 300 checkpoints, each owned by its own role (its own person): a late report on
the first moves all of them, and adopting that proposal queues 300 `delta_dm` rows plus the
channel's card and superseded notice. The Slack stand-in allows `RATE` chat.postMessage calls a
second and answers 429 with `Retry-After` beyond that. The dispatcher drains the outbox (real
aiohttp client, real HTTP on 127.0.0.1) until every row is settled.

The floor is messages / rate: no sender can beat it. The ratio is the cost of the dispatcher's
handling of 429s on top of the floor. Two runs: with the rate configured (`fanout_*`, the
steady state an operator sets up) and with nothing configured (`fanout_learned_*`).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timedelta

from benchmarks._world import make_world, queued_fan_out, quiet
from bot.dispatcher import Dispatcher, make_client
from bot.outbox_port import StoreOutbox
from bot.pace import StorePace
from tests.slack_standin import SlackStandin

PEOPLE = 300
RATE = 100.0  # chat.postMessage calls per second the stand-in allows


async def _measure(prefix: str, rates: dict[str, float] | None) -> dict[str, str]:
    world = await make_world()
    try:
        async with SlackStandin() as slack:
            run, rows = await queued_fan_out(world, slack, PEOPLE)
            outbox = StoreOutbox(world.uow)
            # Paced through the slack_pace table, as `serve` wires it.
            dispatcher = Dispatcher(
                client=make_client(token=slack.token, base_url=slack.base_url),
                outbox=outbox,
                find_target=outbox.find_target,
                rates=rates,
                pace=StorePace(world.uow),
            )
            dm_rows = [r for r in rows if r.kind == "delta_dm"]
            already = len(slack.calls())
            slack.rate_limit("chat.postMessage", per_second=RATE)
            base = world.clock.now()
            began = time.monotonic()

            def now_fn() -> datetime:
                # Simulated time moving at wall-clock speed, so rows left pending become due.
                return base + timedelta(seconds=time.monotonic() - began)

            deadline = began + 50
            while time.monotonic() < deadline:
                await dispatcher.drain(now_fn=now_fn)
                async with world.uow.transaction(read_only=True) as tx:
                    pending = [r for r in await tx.outbox.for_run(run) if r.state == "pending"]
                if not pending:
                    break
                await asyncio.sleep(0.05)
            total = time.monotonic() - began
            measured = slack.calls()[already:]
            posts = [call for call in measured if call.method == "chat.postMessage" and call.ok]
        async with world.uow.transaction(read_only=True) as tx:
            final = {r.id: r for r in await tx.outbox.for_run(run)}
        lost = sum(1 for r in rows if final[r.id].state != "sent")
        per_user = Counter(call.body.get("channel") for call in posts)
        duplicates = sum(1 for r in dm_rows if per_user[r.recipient] > 1)
        messages = sum(1 for r in rows if r.kind != "packet_superseded")  # that one is a chat.update
        floor = messages / RATE
        return {
            f"{prefix}_messages": str(len(rows)),
            f"{prefix}_total_s": f"{total:.2f}",
            f"{prefix}_floor_s": f"{floor:.2f}",
            f"{prefix}_ratio_to_floor": f"{total / floor:.2f}",
            f"{prefix}_lost": str(lost),
            f"{prefix}_duplicates": str(duplicates),
            f"{prefix}_429s": str(sum(1 for call in measured if call.status == 429)),
        }
    finally:
        await world.close()


def run() -> None:
    quiet()
    # Configured: the operator set the dispatcher's pace to the workspace's allowance (a little
    # under it). Learned: nothing configured; the first 429's Retry-After is paid once, then the
    # dispatcher paces itself at the rate Slack let through.
    for prefix, rates in (("fanout", {"chat.postMessage": RATE * 0.95}), ("fanout_learned", None)):
        for name, value in asyncio.run(_measure(prefix, rates)).items():
            print(f"{name}: {value}")
