"""The forecast of a loaded run, and the drift proposal it causes (issue 12).

`forecast_of(ctx)` is `packets.forecast.forecast` over what the use case loaded: planned times
from the authoritative packet, actual times from the engine and from people, forecast at `now`.

`propose_if_drifted(ctx)` runs after every use case on a run (handlers.flow): when the forecast
moves any checkpoint by at least `material_shift` against the latest packet version (the standing
proposal, a rejected one, or the authoritative packet), the next version is proposed from the
forecast, exactly like a late report, with what caused it as its reason ("held 25m at canary-a").
Comparing with the latest version, not only the authoritative one, is what stops a proposal on
every tick: it is proposed again only once the drift is material against that one too. While
the run is stopped (held, paused, frozen) the forecast moves every minute and no version could
stay true, so the proposal waits for the run to move again (typically: the hold's release).
"""

from __future__ import annotations

from datetime import timedelta

from handlers.context import RunContext, save
from handlers.outbox import post
from handlers.proposals import propose
from packets import messages as msg
from packets.engine.progress import TERMINAL, RunState
from packets.forecast import Forecast, describe_cause, forecast, forecast_packet, moved
from packets.packet import Packet

# Who the ledger and the channel line name for a proposal nobody typed.
DRIFT_ACTOR = "forecast"


def forecast_of(ctx: RunContext) -> Forecast:
    return forecast(
        plan=ctx.plan,
        packet=ctx.packet,
        progress=ctx.progress,
        facts=ctx.working_facts,
        now=ctx.now,
        acting=ctx.working_acting,
    )


async def propose_if_drifted(ctx: RunContext) -> Packet | None:
    """Propose the next version from the forecast when it drifted materially; else None."""
    if ctx.progress.state is not RunState.RUNNING or ctx.progress.in_hypercare:
        return None
    latest = await ctx.tx.packets.latest(ctx.run)
    # Mostly the packet in force itself: no need to parse it twice.
    fresh = latest is not None and latest.version != ctx.version
    reference = Packet.from_json(latest.document()) if fresh and latest is not None else ctx.packet
    since = latest.created_at if latest is not None else ctx.now
    candidate = forecast_packet(
        plan=ctx.plan,
        progress=ctx.progress,
        facts=ctx.working_facts,
        now=ctx.now,
        version=reference.version + 1,
        supersedes=ctx.version,
        reason="",
        acting=ctx.working_acting,
    )
    if not moved(reference, candidate, material_shift=ctx.plan.material_shift):
        return None
    cause = describe_cause(ctx.progress, since=since, now=ctx.now, at_least=ctx.plan.material_shift)
    proposed = await propose(ctx, reason=f"forecast drift: {cause}", by=DRIFT_ACTOR)
    if proposed is None:
        return None
    await save(ctx)
    return proposed[0]


async def tell_overrun(ctx: RunContext) -> None:
    """Tell the room, once, when the forecast end passes the plan window's end, naming what
    overruns; once it fits again the next overrun is told again."""
    if ctx.progress.state in TERMINAL:
        return
    ahead = forecast_of(ctx)
    if ahead.overrun <= timedelta(0):
        ctx.overrun_told = False
        return
    if ctx.overrun_told:
        return
    ctx.overrun_told = True
    await post(ctx, to=ctx.plan.channel, message=overrun_line(ctx, ahead, state="forecast past the window"))
    await save(ctx)


def overrun_line(ctx: RunContext, ahead: Forecast, *, state: str) -> msg.RunStateLine:
    late = [c.id for c in ahead.checkpoints if c.end > ahead.window_end]
    minutes = int(ahead.overrun.total_seconds() // 60)
    reason = (
        f"forecast end {ctx.local_time(ahead.end)} is {minutes} min past the window end "
        f"{ctx.local_time(ahead.window_end)}; overrunning: {', '.join(late)}"
    )
    return msg.RunStateLine(state=state, reason=reason)
