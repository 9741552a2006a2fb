"""Three replicas on one PostgreSQL database fan out 300 DMs under one Slack rate (issue #15).

The fan-out of `benchmarks.fanout` (a late report moves a 300-checkpoint chain, adopting it queues
300 `delta_dm` rows plus the channel's card and superseded notice), sent by three dispatchers, each
with its own engine, outbox sender identity and pace, draining together as three replicas would.
The Slack stand-in allows `RATE` chat.postMessage calls a second, whoever makes them.

The floor is messages / rate: no number of replicas can beat it. Three runs:

- `shared_pace_learned_*`: nothing configured, the pace in the `slack_pace` table (production);
  the three burst together at first, and the shares of that burst they report add up to the rate;
- `shared_pace_configured_*`: SLACK_POST_RATE set (a little under the allowance) on every replica,
  a cap on the shared pace of all three together;
- `per_replica_pace_*`: SLACK_POST_RATE set the same way, but each replica with its own pace in
  memory (`bot.pace.LocalPace`), as before the pace was shared: each keeps under the allowance
  alone, and the three together send up to three times it.

Then `slack_down_*`: Slack answers 503 to everything for `DOWN_S` while the three replicas run
their outbox loops (`Dispatcher.run_forever`, as `serve` does), then is back: the requests the
outage cost (each replica's circuit breaker opens after five failures in a row and probes once a
drain; held rows wait their round's backoff), and how long after Slack's return every DM is in.

Needs PostgreSQL: TEST_DATABASE_URL (the server the tests use; a database is created and dropped).
Without it the module prints why it is skipped.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from benchmarks._world import fresh_postgres_database, make_world, queued_fan_out, quiet
from bot.dispatcher import Dispatcher, make_client
from bot.outbox_port import StoreOutbox
from bot.pace import LocalPace, PacePort, StorePace
from store.db import make_engine
from store.outbox import UNFINISHED
from store.uow import UnitOfWork
from tests.slack_standin import SlackStandin

PEOPLE = 300
REPLICAS = 3
RATE = 50.0  # chat.postMessage calls per second the stand-in allows, all replicas together
POST = "chat.postMessage"
URL_ENV = "TEST_DATABASE_URL"
DOWN_S = 20.0  # seconds Slack answers 503 to everything in the outage run

PaceFor = Callable[[UnitOfWork], PacePort]
Rates = dict[str, float] | None


def _replica(uow: UnitOfWork, n: int, slack: SlackStandin, pace: PacePort, rates: Rates) -> Dispatcher:
    outbox = StoreOutbox(uow, sender=f"replica-{n}")
    return Dispatcher(
        client=make_client(token=slack.token, base_url=slack.base_url),
        outbox=outbox,
        find_target=outbox.find_target,
        find_thread=outbox.find_thread,
        rates=rates,
        pace=pace,
    )


async def _measure(prefix: str, url: str, *, pace_for: PaceFor, rates: Rates) -> dict[str, str]:
    world = await make_world(url=url)
    uows = [UnitOfWork(make_engine(url)) for _ in range(REPLICAS)]
    try:
        async with SlackStandin() as slack:
            run, rows = await queued_fan_out(world, slack, PEOPLE)
            ids = [r.id for r in rows]
            already = len(slack.calls())
            slack.rate_limit(POST, per_second=RATE)
            replicas = [_replica(uow, n, slack, pace_for(uow), rates) for n, uow in enumerate(uows)]
            base = world.clock.now()
            began = time.monotonic()

            def now_fn() -> datetime:
                # Simulated time moving at wall-clock speed, so rows left pending become due.
                return base + timedelta(seconds=time.monotonic() - began)

            async def replica_loop(dispatcher: Dispatcher, uow: UnitOfWork) -> None:
                while time.monotonic() < began + 120:
                    await dispatcher.drain(now_fn=now_fn)
                    async with uow.transaction(read_only=True) as tx:
                        rows = await tx.outbox.for_run(run)
                    if all(r.state not in UNFINISHED for r in rows):
                        return
                    await asyncio.sleep(0.05)

            await asyncio.gather(*(replica_loop(d, u) for d, u in zip(replicas, uows, strict=True)))
            total = time.monotonic() - began
            calls = slack.calls()[already:]
        async with world.uow.transaction(read_only=True) as tx:
            final = {r.id: r for r in await tx.outbox.for_run(run)}
            paces = {p.method: p for p in await tx.pace.all()}
    finally:
        for uow in uows:
            await uow.dispose()
        await world.close()
    lost = sum(1 for i in ids if final[i].state != "sent")
    per_user = Counter(call.body.get("channel") for call in calls if call.method == POST and call.ok)
    dms = [final[i].recipient for i in ids if final[i].kind == "delta_dm"]
    duplicates = sum(1 for recipient in dms if per_user[recipient] > 1)
    messages = sum(1 for i in ids if final[i].kind != "packet_superseded")  # that one is a chat.update
    floor = messages / RATE
    learned = paces[POST].rate if POST in paces else None
    return {
        f"{prefix}_replicas": str(REPLICAS),
        f"{prefix}_messages": str(messages),
        f"{prefix}_total_s": f"{total:.2f}",
        f"{prefix}_floor_s": f"{floor:.2f}",
        f"{prefix}_ratio_to_floor": f"{total / floor:.2f}",
        f"{prefix}_lost": str(lost),
        f"{prefix}_duplicates": str(duplicates),
        f"{prefix}_429s": str(sum(1 for call in calls if call.status == 429)),
        f"{prefix}_requests": str(len(calls)),
        f"{prefix}_shared_rate": "none" if learned is None else f"{learned:.1f}",
    }


async def _measure_outage(url: str) -> dict[str, str]:
    """Slack answers 503 to everything for `DOWN_S` while the three replicas run their outbox loops
    as `serve` does; then it is back. Requests during the outage, and what arrives after."""
    world = await make_world(url=url)
    uows = [UnitOfWork(make_engine(url)) for _ in range(REPLICAS)]
    stop = asyncio.Event()
    try:
        async with SlackStandin() as slack:
            run, rows = await queued_fan_out(world, slack, PEOPLE)
            ids = [r.id for r in rows]
            already = len(slack.calls())
            slack.rate_limit(POST, per_second=RATE)
            replicas = [_replica(uow, n, slack, StorePace(uow), None) for n, uow in enumerate(uows)]
            base = world.clock.now()
            began = time.monotonic()

            def now_fn() -> datetime:
                return base + timedelta(seconds=time.monotonic() - began)

            slack.down()
            loops = [
                asyncio.create_task(d.run_forever(stop, now_fn=now_fn, poll_interval=2.0)) for d in replicas
            ]
            await asyncio.sleep(DOWN_S)
            during = len(slack.calls()) - already
            slack.up()
            back = time.monotonic()
            while time.monotonic() < back + 600:
                async with world.uow.transaction(read_only=True) as tx:
                    rows = await tx.outbox.for_run(run)
                if all(r.state not in UNFINISHED for r in rows):
                    break
                await asyncio.sleep(0.2)
            delivered_s = time.monotonic() - back
            stop.set()
            await asyncio.gather(*loops)
            calls = slack.calls()[already:]
        async with world.uow.transaction(read_only=True) as tx:
            final = {r.id: r for r in await tx.outbox.for_run(run)}
    finally:
        stop.set()
        for uow in uows:
            await uow.dispose()
        await world.close()
    per_user = Counter(call.body.get("channel") for call in calls if call.method == POST and call.ok)
    dms = [final[i].recipient for i in ids if final[i].kind == "delta_dm"]
    return {
        "slack_down_replicas": str(REPLICAS),
        "slack_down_messages": str(len(ids)),
        "slack_down_s": f"{DOWN_S:.0f}",
        "slack_down_requests": str(during),
        "slack_down_requests_per_minute": f"{during * 60 / DOWN_S:.0f}",
        "slack_down_back_to_all_delivered_s": f"{delivered_s:.2f}",
        "slack_down_lost": str(sum(1 for i in ids if final[i].state != "sent")),
        "slack_down_duplicates": str(sum(1 for recipient in dms if per_user[recipient] > 1)),
    }


async def _on_a_fresh_database(
    server: str, measure: Callable[[str], Awaitable[dict[str, str]]]
) -> dict[str, str]:
    async with fresh_postgres_database(server) as url:
        return await measure(url)  # make_world migrates it


def run() -> None:
    quiet()
    server = os.environ.get(URL_ENV, "")
    if not server:
        print(f"shared_pace: skipped: needs PostgreSQL, set {URL_ENV}=postgresql+asyncpg://USER@HOST:PORT/DB")
        return
    runs: list[tuple[str, PaceFor, Rates]] = [
        ("shared_pace_learned", StorePace, None),
        ("shared_pace_configured", StorePace, {POST: RATE * 0.95}),
        ("per_replica_pace", lambda _uow: LocalPace(), {POST: RATE * 0.95}),
    ]
    print(f"shared_pace_slack_rate: {RATE:.0f}")
    for prefix, pace_for, rates in runs:
        measure = functools.partial(_measure, prefix, pace_for=pace_for, rates=rates)
        for name, value in asyncio.run(_on_a_fresh_database(server, measure)).items():
            print(f"{name}: {value}")
    for name, value in asyncio.run(_on_a_fresh_database(server, _measure_outage)).items():
        print(f"{name}: {value}")
