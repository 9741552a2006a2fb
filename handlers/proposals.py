"""Proposing the next packet version: the one way a changed fact or the forecast becomes a proposal.

A proposal is built from the forecast at the moment it is proposed
(`packets.forecast.forecast_packet`): done and running checkpoints keep their actual times, and
nothing pending is planned before now. It stands until the release authority adopts or rejects
it (handlers.adoption); the channel hears one short line with Adopt and Reject.
"""

from __future__ import annotations

from handlers.context import RunContext, ledger
from handlers.notices import delta_counts
from handlers.outbox import answer, post
from packets import messages as msg
from packets.delta import diff
from packets.forecast import forecast_packet
from packets.packet import Packet, PacketState
from packets.timeline import Facts


async def propose(ctx: RunContext, facts: Facts, *, reason: str, by: str) -> tuple[Packet, str] | None:
    """Build and store the next proposed packet from `facts`; None when nothing material changed."""
    latest = await ctx.tx.packets.latest(ctx.run)
    version = (latest.version if latest else ctx.version) + 1
    packet = forecast_packet(
        plan=ctx.plan,
        progress=ctx.progress,
        facts=facts,
        now=ctx.now,
        version=version,
        supersedes=ctx.version,
        reason=reason,
        acting=ctx.acting,
    )
    delta = diff(ctx.packet, packet, material_shift=ctx.plan.material_shift)
    if not delta.material_changes:
        # Nothing anyone must act on: the fact joins what the next proposal builds on.
        ctx.working_facts = facts
        return None
    ctx.pending = facts
    for stale in await ctx.tx.packets.in_state(ctx.run, str(PacketState.PROPOSED)):
        # Only one proposal stands at a time: the newest facts win, the older one is superseded.
        await ctx.tx.packets.set_state_cas(
            ctx.run,
            stale.version,
            from_state=str(PacketState.PROPOSED),
            to_state=str(PacketState.SUPERSEDED),
            at=ctx.now,
        )
        await answer(ctx, key=proposal_key(stale.version), state="replaced", by=by, detail=f"by v{version}")
    await ctx.tx.packets.add(
        run_id=ctx.run,
        version=version,
        state=str(PacketState.PROPOSED),
        hash=packet.hash,
        body=packet.as_json(),
        reason=reason,
        supersedes=ctx.version,
        at=ctx.now,
    )
    summary = delta.summary()
    await ledger(
        ctx,
        actor=by,
        kind="packet_proposed",
        payload={
            "version": version,
            "supersedes": ctx.version,
            "hash": packet.hash,
            "reason": reason,
            "summary": summary,
        },
    )
    line = msg.PacketProposedLine(
        version=version, counts=delta_counts(delta), reason=reason, by=by, summary=summary
    )
    await post(ctx, to=ctx.plan.channel, message=line, dedupe_key=proposal_key(version))
    return packet, summary


def proposal_key(version: int) -> str:
    """The dedupe key of a proposal's Adopt/Reject line, which its answer updates in place."""
    return f"proposal:v{version}"
