"""Use cases for packet versions: adopt or reject a proposal, acknowledge the current version.

Adoption is a compare-and-set on both versions: the proposal must still be `proposed` and the
version it was built against must still be authoritative, so two authorities clicking Adopt on
two proposals can never both win.
"""

from __future__ import annotations

from handlers.commands import Acknowledge, AdoptPacket, RejectPacket
from handlers.context import RunContext, ledger, save
from handlers.deps import Deps
from handlers.drift import forecast_of
from handlers.effects import apply
from handlers.flow import on_run
from handlers.notices import change_rows
from handlers.outbox import answer, post
from handlers.outcome import Outcome
from handlers.proposals import proposal_key
from packets import messages as msg
from packets.authority import Refused
from packets.delta import diff
from packets.engine import events as ev
from packets.packet import Packet, PacketState, register_id

_PROPOSED = str(PacketState.PROPOSED)


def dm_key(version: int, user: str) -> str:
    """The dedupe key of `user`'s delta notice for `version`, which its answer updates in place."""
    return f"dm:v{version}:{user}"


def _require_adopter(ctx: RunContext, user: str) -> str:
    roster = ctx.roster
    for role in ctx.plan.authority.adopt_packets:
        if roster.may_act(user, role):
            return role
    acting = ", ".join(f"{r}: {roster.acting_user(r)}" for r in ctx.plan.authority.adopt_packets)
    raise Refused(
        f"Only the acting {', '.join(ctx.plan.authority.adopt_packets)} may adopt or reject a packet "
        f"({acting})."
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
        role = _require_adopter(ctx, cmd.user)
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
        # Only one proposal stands at a time, so the pending facts are this version's.
        if ctx.pending is not None:
            ctx.facts, ctx.pending = ctx.pending, None
        await apply(ctx, ev.PacketAdopted(at=ctx.now, version=new.version, user=cmd.user), deps)
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
            # The card's register names planned holds by checkpoint and source (packets.packet).
            released=tuple(
                register_id(source=h.source, checkpoint=h.checkpoint)
                for h in ctx.progress.holds.values()
                if not h.is_open and h.checkpoint is not None
            ),
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
    async def body(ctx: RunContext) -> Outcome:
        _require_adopter(ctx, cmd.user)
        packet = await _proposal(ctx, cmd.version)
        if not await ctx.tx.packets.set_state_cas(
            ctx.run, packet.version, from_state=_PROPOSED, to_state=str(PacketState.REJECTED), at=ctx.now
        ):
            raise Refused(f"v{packet.version} is no longer proposed; v{ctx.version} is current.")
        ctx.pending = None  # the rejected proposal's facts go with it
        reason = cmd.reason
        await ledger(
            ctx, actor=cmd.user, kind="packet_rejected", payload={"version": packet.version, "reason": reason}
        )
        rejected = msg.RunStateLine(
            state=f"v{packet.version} rejected; v{ctx.version} stays current", by=cmd.user, reason=reason
        )
        await post(ctx, to=ctx.plan.channel, message=rejected)
        await answer(ctx, key=proposal_key(packet.version), state="rejected", by=cmd.user)
        await save(ctx)
        return Outcome.done(
            f"v{packet.version} rejected; v{ctx.version} stays current.",
            run=ctx.run,
            current_version=ctx.version,
        )

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
