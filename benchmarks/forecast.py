"""Forecast recomputation, and a hold's release to the drift proposal reaching Slack.

`forecast_200_p99_ms`: `packets.forecast.forecast` of a 200-checkpoint run (random dependencies,
protected windows and plan holds, as in benchmarks/resequence.py) with half of it done, one
checkpoint running and a late report, recomputed `SAMPLES` times (target: p99 under 20 ms).

`drift_proposal_p99_ms`: a run whose first checkpoint is a plan hold kept 30 minutes; from the
`release_hold` call to the proposal's channel line handed to the Slack stand-in by the real
dispatcher (target: p99 under 250 ms). One fresh run per sample, in one database.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from benchmarks._world import AUTHORITY, WINDOW_START, chained_plan, make_world, quiet, started_run
from benchmarks.resequence import random_plan
from bot.dispatcher import Dispatcher, make_client
from bot.outbox_port import StoreOutbox
from handlers import commands as c
from handlers.holds import release_hold
from packets.engine.progress import CheckpointState, RunProgress, RunState
from packets.forecast import forecast
from packets.packet import PacketState
from packets.timeline import Facts, build_packet
from tests.slack_standin import SlackStandin

SAMPLES = 300
RELEASES = 40


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _forecast_samples() -> list[float]:
    plan = random_plan(200, protected=6, holds=4)
    packet = build_packet(
        plan, Facts(), version=1, supersedes=None, reason="bench", acting={}, state=PacketState.AUTHORITATIVE
    )
    progress = RunProgress(
        run_id="bench",
        plan_revision=plan.revision,
        packet_version=1,
        state=RunState.RUNNING,
        opened_at=WINDOW_START,
        started_at=WINDOW_START,
    )
    for line in packet.timeline[:100]:
        progress = progress.with_checkpoint(
            line.id,
            state=CheckpointState.DONE,
            started_at=line.start,
            done_at=line.end + timedelta(minutes=3),
        )
    running = packet.timeline[100]
    progress = progress.with_checkpoint(running.id, state=CheckpointState.ACTIVE, started_at=running.start)
    facts = Facts().report_late(running.id, running.end + timedelta(minutes=30))
    now = running.start + timedelta(minutes=10)
    times: list[float] = []
    for _ in range(SAMPLES):
        began = time.perf_counter()
        forecast(plan=plan, packet=packet, progress=progress, facts=facts, now=now)
        times.append((time.perf_counter() - began) * 1000)
    return times


async def _drift_samples() -> list[float]:
    world = await make_world()
    times: list[float] = []
    try:
        async with SlackStandin() as slack:
            client = make_client(token=slack.token, base_url=slack.base_url)
            outbox = StoreOutbox(world.uow)
            dispatcher = Dispatcher(client=client, outbox=outbox, find_target=outbox.find_target)
            for i in range(RELEASES):
                plan = chained_plan(12, plan_id=f"drift-{i}", channel=f"C0DRIFT{i:03d}", one_role_each=False)
                plan["checkpoints"][0]["hold"] = {"release_by": ["release-authority"], "reason": "go/no-go"}
                start = world.clock.now()  # the simulated clock never goes back: each run opens now
                plan["window"] = {
                    "start": start.isoformat(),
                    "end": (start + timedelta(days=1)).isoformat(),
                }
                run = await started_run(world, plan)
                await dispatcher.drain(now_fn=world.clock.now)
                world.clock.advance(timedelta(minutes=30))
                already = len(slack.calls())
                began = time.perf_counter()
                released = await release_hold(c.ReleaseHold(run=run, user=AUTHORITY, hold="cp-0"), world.deps)
                assert released.ok, released.message
                await dispatcher.drain(now_fn=world.clock.now)
                lines = [
                    call
                    for call in slack.calls()[already:]
                    if call.method == "chat.postMessage"
                    and call.body.get("channel") == plan["channel"]
                    and "proposed" in str(call.body.get("text", ""))
                ]
                elapsed = (time.perf_counter() - began) * 1000
                assert lines, "no drift proposal reached the stand-in"
                times.append(elapsed)
    finally:
        await world.close()
    return times


def run() -> None:
    quiet()
    times = _forecast_samples()
    print(f"forecast_200_p50_ms: {_percentile(times, 50):.2f}")
    print(f"forecast_200_p99_ms: {_percentile(times, 99):.2f}")
    drift = asyncio.run(_drift_samples())
    print(f"drift_proposal_p50_ms: {_percentile(drift, 50):.1f}")
    print(f"drift_proposal_p99_ms: {_percentile(drift, 99):.1f}")


if __name__ == "__main__":
    run()
