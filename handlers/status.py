"""Read-only use cases: where a run is, what a person owns, may release and must acknowledge."""

from __future__ import annotations

from typing import Any

from handlers.context import RunContext, load
from handlers.deps import Deps
from handlers.drift import forecast_of
from handlers.outcome import Outcome
from packets.delta import diff
from packets.durations import format_duration
from packets.engine import hypercare
from packets.engine.progress import TERMINAL
from packets.packet import Packet
from packets.text import inert


async def _peek(run: str, deps: Deps) -> RunContext | None:
    async with deps.uow.transaction(read_only=True) as tx:
        return await load(tx, run, deps.clock.now())


async def run_in_channel(channel: str, deps: Deps) -> str | None:
    async with deps.uow.transaction(read_only=True) as tx:
        row = await tx.runs.active_in_channel(channel)
    return row.run_id if row is not None else None


async def record_run(channel: str, named: str | None, deps: Deps) -> str | None:
    """The run whose record `/cutover evidence` and `/cutover ledger` read in `channel`: the run
    named, if it is this channel's; else the channel's active run, else its newest (ended runs
    stay readable: the record is wanted most the morning after)."""
    async with deps.uow.transaction(read_only=True) as tx:
        if named is not None:
            row = await tx.runs.get(named)
            return named if row is not None and row.channel == channel else None
        row = await tx.runs.active_in_channel(channel) or await tx.runs.newest_in_channel(channel)
    return row.run_id if row is not None else None


async def run_channel(run: str, deps: Deps) -> str | None:
    """The war-room channel of `run`, or None when there is no such run."""
    async with deps.uow.transaction(read_only=True) as tx:
        row = await tx.runs.get(run)
    return str(row.channel) if row is not None else None


async def run_members(run: str, deps: Deps) -> set[str]:
    """Everyone the run's plan names in a role (primaries and delegates): whom a change concerns."""
    ctx = await _peek(run, deps)
    if ctx is None:
        return set()
    return set(ctx.plan.members)


async def run_revision(run: str, deps: Deps) -> str:
    ctx = await _peek(run, deps)
    return ctx.plan.revision if ctx else ""


async def run_status(run: str, deps: Deps) -> Outcome:
    ctx = await _peek(run, deps)
    if ctx is None:
        return Outcome.refused(f"There is no run '{run}'.")
    title = inert(ctx.plan.title)
    state = ctx.progress.state.words
    lines = [f"*{title}* — run `{run}` is *{state}*, following packet v{ctx.version}.", *at_a_glance(ctx)]
    return Outcome.done(
        "\n".join(lines),
        run=run,
        current_version=ctx.version,
        state=str(ctx.progress.state),
        forecast=forecast_of(ctx).as_json(),
    )


def at_a_glance(ctx: RunContext, *, every_checkpoint: bool = True) -> list[str]:
    """The run now, one mrkdwn line each: what is in flight, hyper-care, traffic, open holds, how
    many checkpoints are done, and the forecast (`/cutover status` and the run's live card):
    per checkpoint and its critical path, or (`every_checkpoint=False`) only its end."""
    progress = ctx.progress
    order = [c.id for c in ctx.packet.timeline]
    lines: list[str] = []
    # Branches side by side are each "now".
    for current in progress.flights(order):
        line = ctx.packet.checkpoint(current)
        state = progress.checkpoints[current].state
        lines.append(
            f"Now: {inert(line.title)} ({state}), owner <@{line.owner_user}>, planned "
            f"{ctx.local_time(line.start)}–{ctx.local_time(line.end)}."
        )
    since, ends = progress.hypercare_since, hypercare.until(ctx.plan, progress)
    if since is not None and ends is not None and progress.state not in TERMINAL:
        step = hypercare.step_now(ctx.plan, progress, ctx.now)
        cadence = f"checks every {format_duration(step[1].every)}" if step else "its last check is done"
        if step is not None and step[1].between:
            cadence += f" between {step[1].between}"
        until = ctx.local_time(ends)
        lines.append(f"Hyper-care since {ctx.local_time(since)} until {until}: {cadence}.")
    traffic = ", ".join(f"{cohort} {pct:g}%" for cohort, pct in sorted(progress.traffic.items()))
    if traffic:
        lines.append(f"Traffic: {traffic}.")
    for hold in progress.open_holds():
        lines.append(
            f"Hold `{hold.id}`: {inert(hold.reason)} — release by {', '.join(hold.release_by)} ({hold.mode})."
        )
    done = sum(1 for c in progress.checkpoints.values() if c.state == "done")
    lines.append(f"{done} of {len(order)} checkpoints done.")
    ahead = forecast_of(ctx).lines()
    return [*lines, *(ahead if every_checkpoint else ahead[-1:])]


async def packet_view(run: str, deps: Deps, *, version: int | None = None) -> Outcome:
    """The packet in force, with each checkpoint's state and the forecast; or any other version
    (`/cutover packet vN`: a proposal before adopting it, a past or rejected one) with what it
    changes against the packet in force."""
    async with deps.uow.transaction(read_only=True) as tx:
        ctx = await load(tx, run, deps.clock.now())
        row = await tx.packets.get(run, version) if version is not None else None
    if ctx is None:
        return Outcome.refused(f"There is no run '{run}'.")
    if version is not None and version != ctx.version:
        if row is None:
            return Outcome.refused(
                f"Run {run} has no packet v{version}; v{ctx.version} is in force.",
                current_version=ctx.version,
            )
        return _other_version(ctx, Packet.from_json(row.body), state=row.state)
    lines = [f"*Packet v{ctx.version}* ({ctx.packet.state}) — {inert(ctx.packet.reason)}"]
    for line in ctx.packet.timeline:
        flags = [f for f, on in (("protected", line.protected), ("held", line.held)) if on]
        if line.conflict:
            flags.append(f"conflict: {inert(line.conflict)}")
        state = ctx.progress.checkpoints.get(line.id)
        lines.append(
            f"{ctx.local_time(line.start)}–{ctx.local_time(line.end)} "
            f"{inert(line.title)} <@{line.owner_user}>"
            f" [{state.state if state else 'pending'}]" + (f" ({'; '.join(flags)})" if flags else "")
        )
    ahead = forecast_of(ctx)
    lines += ahead.lines()
    return Outcome.done(
        "\n".join(lines),
        run=run,
        current_version=ctx.version,
        packet=ctx.packet.as_json(),
        forecast=ahead.as_json(),
    )


def _other_version(ctx: RunContext, packet: Packet, *, state: str) -> Outcome:
    against = diff(ctx.packet, packet, material_shift=ctx.plan.material_shift)
    lines = [
        f"*Packet v{packet.version}* ({state.replace('_', ' ')}) — {inert(packet.reason)}",
        f"Against v{ctx.version}, the packet in force: {against.summary()}.",
    ]
    for line in packet.timeline:
        flags = [f for f, on in (("protected", line.protected), ("held", line.held)) if on]
        when = f"{ctx.local_time(line.start)}–{ctx.local_time(line.end)}"
        shown = f"{when} {inert(line.title)} <@{line.owner_user}>"
        lines.append(shown + (f" ({'; '.join(flags)})" if flags else ""))
    return Outcome.done("\n".join(lines), run=ctx.run, current_version=ctx.version, packet=packet.as_json())


async def forecast_view(run: str, deps: Deps) -> Outcome:
    """Planned / actual / forecast per checkpoint, the critical path and the forecast end."""
    ctx = await _peek(run, deps)
    if ctx is None:
        return Outcome.refused(f"There is no run '{run}'.")
    ahead = forecast_of(ctx)
    return Outcome.done(
        "\n".join(ahead.lines()), run=run, current_version=ctx.version, forecast=ahead.as_json()
    )


async def ledger_tail(run: str, count: int, deps: Deps) -> Outcome:
    async with deps.uow.transaction(read_only=True) as tx:
        entries = await tx.ledger.tail(run, count)
        ctx = await load(tx, run, deps.clock.now())
    # In the plan's offset, as every other view tells time.
    tz = ctx.plan.window.start.tzinfo if ctx is not None else None
    lines = [
        f"`#{e.seq}` {e.at.astimezone(tz).isoformat(timespec='seconds')} {e.actor}: "
        f"{e.kind.replace('_', ' ')}"
        for e in entries
    ]
    return Outcome.done("\n".join(lines) or "The ledger is empty.", run=run)


async def status_for_user(user: str, deps: Deps) -> Outcome:
    """What `user` owns, must acknowledge and may release, across active runs (App Home)."""
    async with deps.uow.transaction(read_only=True) as tx:
        rows = await tx.runs.active()
        contexts = [c for c in [await load(tx, r.run_id, deps.clock.now()) for r in rows] if c is not None]
        acked = {(c.run, c.version): await tx.acks.get(c.run, c.version, user) for c in contexts}
    runs: list[dict[str, Any]] = []
    owned: list[dict[str, Any]] = []
    to_ack: list[dict[str, Any]] = []
    to_release: list[dict[str, Any]] = []
    for ctx in contexts:
        roster = ctx.roster
        roles = roster.roles_of(user)
        involved = bool(roles) or any(user in r.members for r in ctx.plan.roles.values())
        if not involved:
            continue
        runs.append(
            {
                "run": ctx.run,
                "title": ctx.plan.title,
                "channel": ctx.plan.channel,
                "version": ctx.version,
                "state": str(ctx.progress.state),
            }
        )
        ahead = forecast_of(ctx)
        for line in ctx.packet.timeline:
            state = ctx.progress.checkpoints.get(line.id)
            if (
                line.owner_role in roles
                and state is not None
                and state.state not in ("done", "skipped", "failed")
            ):
                owned.append(
                    {
                        "run": ctx.run,
                        "checkpoint": line.id,
                        "title": line.title,
                        "start": line.start.isoformat(),
                        "end": line.end.isoformat(),
                        "status": str(state.state),
                        "held": state.state == "held",
                        "forecast_start": ahead.of(line.id).start.isoformat(),
                        "forecast_end": ahead.of(line.id).end.isoformat(),
                        "behind": int(ahead.of(line.id).behind.total_seconds() // 60),
                    }
                )
        if roles and acked[(ctx.run, ctx.version)] is None:
            to_ack.append({"run": ctx.run, "version": ctx.version, "reason": ctx.packet.reason})
        for hold in ctx.progress.open_holds():
            done_roles = {r.role for r in hold.releases}
            if any(role in hold.release_by and role not in done_roles for role in roles):
                to_release.append(
                    {
                        "run": ctx.run,
                        "hold": hold.id,
                        "checkpoint": hold.checkpoint,
                        "reason": hold.reason,
                        "version": ctx.version,
                    }
                )
    summary = (
        f"{len(owned)} checkpoints you own, {len(to_ack)} packets to acknowledge, "
        f"{len(to_release)} holds you may release, across {len(runs)} active runs."
    )
    return Outcome.done(summary, user=user, runs=runs, owned=owned, to_ack=to_ack, to_release=to_release)
