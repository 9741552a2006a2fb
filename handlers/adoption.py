"""Use cases for packet versions: adopt or reject a proposal, acknowledge the current version.

Adoption is a compare-and-set on both versions: the proposal must still be `proposed` and the
version it was built against must still be authoritative, so two authorities clicking Adopt on
two proposals can never both win.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from handlers.commands import Acknowledge, AdoptPacket, RejectPacket
from handlers.context import RunContext, ledger, save
from handlers.deps import Deps
from handlers.drift import forecast_of, overrun_line
from handlers.effects import apply
from handlers.flow import on_run
from handlers.notices import change_rows
from handlers.outbox import answer, post
from handlers.outcome import Outcome
from handlers.proposals import proposal_key, propose, take_effect
from packets import messages as msg
from packets.authority import Refused, acting_role
from packets.delta import diff
from packets.engine import events as ev
from packets.packet import Packet, PacketState
from packets.pending import carried_by

_PROPOSED = str(PacketState.PROPOSED)


def dm_key(version: int, user: str) -> str:
    """The dedupe key of `user`'s delta notice for `version`, which its answer updates in place."""
    return f"dm:v{version}:{user}"


def run_holds(ctx: RunContext) -> tuple[dict[str, Any], ...]:
    """The run's opened holds as the packet card reads them (`PacketPosted.run_holds`)."""
    return tuple(
        {
            "id": h.id,
            "checkpoint": h.checkpoint,
            "source": str(h.source),
            "open": h.is_open,
            "reason": h.reason,
            "release_by": list(h.release_by),
            "mode": h.mode,
        }
        for h in ctx.progress.holds.values()
    )


async def _proposal(ctx: RunContext, version: int | None) -> Packet:
    if version is None:
        proposed = await ctx.tx.packets.in_state(ctx.run, _PROPOSED)
        if not proposed:
            raise Refused(f"There is no proposed packet; v{ctx.version} is current.")
        row = max(proposed, key=lambda r: r.version)
    else:
        found = await ctx.tx.packets.get(ctx.run, version)
        if found is None:
            raise Refused(f"There is no packet v{version}; v{ctx.version} is current.")
        row = found
    if row.state != _PROPOSED:
        raise Refused(f"v{row.version} is {row.state}, not proposed; v{ctx.version} is current.")
    packet = Packet.from_json(row.document())
    if packet.supersedes != ctx.version:
        raise Refused(
            f"v{packet.version} was proposed against v{packet.supersedes}, but v{ctx.version} is now "
            "current; report the change again for a fresh proposal."
        )
    return packet


async def adopt_packet(cmd: AdoptPacket, deps: Deps) -> Outcome:
    async def body(ctx: RunContext) -> Outcome:
        new = await _proposal(ctx, cmd.version)
        old = ctx.packet
        won = await ctx.tx.packets.set_state_cas(
            ctx.run, new.version, from_state=_PROPOSED, to_state=str(PacketState.AUTHORITATIVE), at=ctx.now
        )
        kept = await ctx.tx.packets.set_state_cas(
            ctx.run,
            old.version,
            from_state=str(PacketState.AUTHORITATIVE),
            to_state=str(PacketState.SUPERSEDED),
            at=ctx.now,
        )
        if not (won and kept):
            raise Refused(f"v{new.version} was adopted or withdrawn a moment ago; v{ctx.version} is current.")
        ctx.packet = new.with_state(PacketState.AUTHORITATIVE)
        # The engine checks that the adopter acts for an adopt_packets role (packets.authority),
        # under the acting users in force before this adoption.
        await apply(ctx, ev.PacketAdopted(at=ctx.now, version=new.version, user=cmd.user), deps)
        # The role it was adopted as, for the ledger (the engine has just accepted it).
        role = acting_role(ctx.roster, cmd.user, ctx.plan.authority.adopt_packets, "adopt")
        # What this version carries is true now (a delegate switch: the new user acts from here).
        await take_effect(ctx, carried_by(ctx.changes, new.version), by=cmd.user)
        delta = diff(old, new, material_shift=ctx.plan.material_shift)
        await ledger(
            ctx,
            actor=cmd.user,
            kind="packet_adopted",
            payload={
                "version": new.version,
                "supersedes": old.version,
                "hash": new.hash,
                "role": role,
                "summary": delta.summary(),
            },
        )
        channel = ctx.plan.channel
        superseded = msg.PacketSuperseded(version=old.version, superseded_by=new.version, reason=new.reason)
        await post(ctx, to=channel, message=superseded)
        posted = msg.PacketPosted(
            packet=ctx.packet.as_json(),
            summary=delta.summary(),
            run_holds=run_holds(ctx),
            forecast=forecast_of(ctx).as_json(),
        )
        await post(ctx, to=channel, message=posted, dedupe_key=f"packet:v{new.version}")
        await answer(ctx, key=proposal_key(new.version), state="adopted", by=cmd.user)
        # The old version's notices nobody acknowledged are outdated now: no live button on them.
        for row in await ctx.tx.outbox.for_run(ctx.run):
            key = row.dedupe_key or ""
            if key.startswith(f"dm:v{old.version}:") and ":" not in key.removeprefix(f"dm:v{old.version}:"):
                reader = key.removeprefix(f"dm:v{old.version}:")
                if await ctx.tx.acks.get(ctx.run, old.version, reader) is None:
                    await answer(ctx, key=key, state="outdated", by=cmd.user, detail=f"v{new.version}")
        ahead = forecast_of(ctx)
        if ahead.overrun > timedelta(0):
            # Adopting a timeline that ends past the window is a decision the room hears again.
            ctx.overrun_told = True
            line = overrun_line(ctx, ahead, state=f"v{new.version} adopted ends past the window")
            await post(ctx, to=channel, message=line)
        notices = delta.notices()
        for user, changes in notices.items():
            dm = msg.DeltaDm(
                version=new.version,
                from_version=old.version,
                channel=channel,
                reason=new.reason,
                changes=tuple(change_rows(changes)),
            )
            await post(ctx, to=user, message=dm, dedupe_key=dm_key(new.version, user))
        await save(ctx, authoritative_version=new.version)
        return Outcome.done(
            f"v{new.version} is authoritative ({delta.summary()}); "
            f"{len(notices)} affected people notified by DM.",
            run=ctx.run,
            current_version=new.version,
            notified=sorted(notices),
        )

    return await on_run(cmd.run, user=cmd.user, action="adopt packet", deps=deps, body=body)


async def reject_packet(cmd: RejectPacket, deps: Deps) -> Outcome:
    """Reject a proposal, or only some of the pending changes it carries (default: the newest);
    the others stay pending and the next proposal is rebuilt from them at once."""

    async def body(ctx: RunContext) -> Outcome:
        packet = await _proposal(ctx, cmd.version)
        # A rejection has no engine event: the same authority check, asked here.
        acting_role(
            ctx.roster, cmd.user, ctx.plan.authority.adopt_packets, f"reject packet v{packet.version}"
        )
        carried = carried_by(ctx.changes, packet.version)
        named = set(cmd.facts) or ({max(c.seq for c in carried)} if carried else set())
        unknown = sorted(named - {c.seq for c in carried})
        if unknown:
            inside = ", ".join(f"#{c.seq}" for c in carried) or "no reported change"
            raise Refused(
                f"v{packet.version} carries {inside}; "
                f"{', '.join(f'#{n}' for n in unknown)} is not one of them."
            )
        if not await ctx.tx.packets.set_state_cas(
            ctx.run, packet.version, from_state=_PROPOSED, to_state=str(PacketState.REJECTED), at=ctx.now
        ):
            raise Refused(f"v{packet.version} is no longer proposed; v{ctx.version} is current.")
        rejected = tuple(c for c in carried if c.seq in named)
        ctx.changes = tuple(c for c in ctx.changes if c.seq not in named)
        reason = cmd.reason
        await ledger(
            ctx,
            actor=cmd.user,
            kind="packet_rejected",
            payload={
                "version": packet.version,
                "reason": reason,
                "facts": [c.as_json() for c in rejected],
                "kept": [c.seq for c in ctx.changes],
            },
        )
        dropped = ", ".join(c.describe(clock=ctx.local_time) for c in rejected)
        state = f"v{packet.version} rejected; v{ctx.version} stays current" + (
            f" (dropped {dropped})" if dropped else ""
        )
        await post(
            ctx, to=ctx.plan.channel, message=msg.RunStateLine(state=state, by=cmd.user, reason=reason)
        )
        await answer(ctx, key=proposal_key(packet.version), state="rejected", by=cmd.user)
        rebuilt = None
        if ctx.changes:
            kept = ", ".join(f"#{c.seq}" for c in ctx.changes)
            rebuilt = await propose(
                ctx, reason=f"v{packet.version} without the rejected change; keeps {kept}", by=cmd.user
            )
        await save(ctx)
        names = ", ".join(f"#{c.seq}" for c in rejected)
        text = f"v{packet.version} rejected; v{ctx.version} stays current."
        if names:
            text = f"v{packet.version} rejected: {names} dropped; v{ctx.version} stays current."
        if rebuilt is not None:
            text += f" v{rebuilt[0].version} proposed from what is still pending: {rebuilt[1]}."
        return Outcome.done(text, run=ctx.run, current_version=ctx.version)

    return await on_run(cmd.run, user=cmd.user, action="reject packet", deps=deps, body=body)


async def acknowledge(cmd: Acknowledge, deps: Deps) -> Outcome:
    async def body(ctx: RunContext) -> Outcome:
        version = ctx.version if cmd.version is None else cmd.version
        if version != ctx.version:
            raise Refused(
                f"v{version} is no longer current; v{ctx.version} is. Acknowledge v{ctx.version} instead."
            )
        if not any(cmd.user in role.members for role in ctx.plan.roles.values()):
            raise Refused(f"{cmd.user} has no role in this plan.")
        if not await ctx.tx.acks.add(run_id=ctx.run, version=version, user=cmd.user, at=ctx.now):
            earlier = await ctx.tx.acks.get(ctx.run, version, cmd.user)
            when = earlier.at.isoformat(timespec="minutes") if earlier else "earlier"
            return Outcome.done(
                f"You already acknowledged v{version} at {when}.", run=ctx.run, current_version=ctx.version
            )
        await ledger(ctx, actor=cmd.user, kind="acknowledged", payload={"version": version})
        await answer(ctx, key=dm_key(version, cmd.user), state="acknowledged", by=cmd.user)
        await save(ctx)
        return Outcome.done(f"Acknowledged v{version}.", run=ctx.run, current_version=ctx.version)

    return await on_run(cmd.run, user=cmd.user, action="acknowledge", deps=deps, body=body)
