"""The bot's sending half in a process of its own, for tests/test_fault_crash.py to kill.

    python -m tests.crash_child --database-url URL --slack-api-url URL --token T \
        --lease SECONDS --sim-anchor ISO --wall-anchor EPOCH (--forever | --until-settled)

Builds the bot with `bot.wiring.build` on the given database and Slack URL, exactly as
`cutover-bot serve` does, then sends the outbox with a dispatcher built the way the wiring
builds its own (the bot's Web API client, the configured concurrency and rates, `find_target`),
except for the lease: `StoreOutbox(uow, lease=...)`, so that rows claimed by a killed sender are
taken over in seconds instead of the production five minutes.

Time: the rows were queued on a simulated clock; both children read the same clock, the
simulated instant `--sim-anchor` at the wall-clock time `--wall-anchor`, moving with the wall
clock, so a lease taken by the first child expires for the second one on time.

- `--forever`: the serve loop (`Dispatcher.run_forever`) until the process is killed;
- `--until-settled`: drain until no row is pending or being sent, then stop the bot and exit 0
  (exit 1 after `--limit` seconds). Prints one JSON line with what it sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import SecretStr

from bot.clock import SimulatedClock
from bot.dispatcher import Dispatcher, DrainReport
from bot.outbox_port import StoreOutbox
from bot.settings import Settings
from bot.wiring import build
from store.outbox import OutboxState
from store.uow import UnitOfWork


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="crash_child")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--slack-api-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--lease", type=float, required=True)
    parser.add_argument("--sim-anchor", required=True)
    parser.add_argument("--wall-anchor", type=float, required=True)
    parser.add_argument("--limit", type=float, default=60.0)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--forever", action="store_true")
    mode.add_argument("--until-settled", action="store_true")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> int:
    sim_anchor = datetime.fromisoformat(args.sim_anchor)

    def now() -> datetime:
        return sim_anchor + timedelta(seconds=time.time() - args.wall_anchor)

    with tempfile.TemporaryDirectory(prefix="crash-child-plans-") as plans:
        settings = Settings(
            slack_bot_token=SecretStr(args.token),
            slack_signing_secret=SecretStr("crash-child-signing-secret"),
            slack_api_url=args.slack_api_url,
            database_url=args.database_url,
            cutover_plans_dir=plans,
        )
        bot = await build(settings, clock=SimulatedClock(now()))
        try:
            outbox = StoreOutbox(bot.uow, lease=timedelta(seconds=args.lease))
            dispatcher = Dispatcher(
                client=bot.client,
                outbox=outbox,
                concurrency=settings.dispatch_concurrency,
                find_target=outbox.find_target,
                rates=settings.rates(),
            )
            print(json.dumps({"started": True}), flush=True)
            if args.forever:
                await dispatcher.run_forever(asyncio.Event(), now_fn=now, poll_interval=0.1)
                return 1  # never stops by itself
            return await _until_settled(bot.uow, dispatcher, now, limit=args.limit)
        finally:
            await bot.stop()


async def _until_settled(
    uow: UnitOfWork, dispatcher: Dispatcher, now: Callable[[], datetime], *, limit: float
) -> int:
    began = time.monotonic()
    total = DrainReport()
    while time.monotonic() - began < limit:
        report = await dispatcher.drain(now_fn=now)
        total.sent += report.sent
        total.retried += report.retried
        total.failed += report.failed
        async with uow.transaction(read_only=True) as tx:
            counts = await tx.outbox.counts()
        unfinished = counts.get(OutboxState.PENDING, 0) + counts.get(OutboxState.SENDING, 0)
        if not unfinished:
            print(
                json.dumps(
                    {"settled": True, "sent": total.sent, "retried": total.retried, "failed": total.failed}
                ),
                flush=True,
            )
            return 0
        await asyncio.sleep(0.05)
    print(json.dumps({"settled": False, "sent": total.sent}), flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(_args(sys.argv[1:]))))
