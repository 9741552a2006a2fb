"""Proposing the next packet version: the one way a changed fact or the forecast becomes a proposal.

A proposal is built from the forecast at the moment it is proposed
(`packets.forecast.forecast_packet`): done and running checkpoints keep their actual times, and
nothing pending is planned before now. It stands until the release authority adopts or rejects
it (handlers.adoption); the channel hears one short line with Adopt and Reject.
"""

from __future__ import annotations

from handlers.context import RunContext, ledger
from handlers.notices import change_rows, delta_counts
from handlers.outbox import answer, post
from packets import messages as msg
from packets.delta import diff
from packets.forecast import forecast_packet
from packets.packet import Packet, PacketState
from packets.pending import ChangeKind, PendingChange, proposed


async def propose(ctx: RunContext, *, reason: str, by: str) -> tuple[Packet, str] | None:
    """Build and store the next proposed packet from the adopted facts and every pending change;
    None when nothing material changed (the pending changes then take effect at once: no packet
    needs to carry them)."""
    latest = await ctx.tx.packets.latest(ctx.run)
    version = (latest.version if latest else ctx.version) + 1
    packet = forecast_packet(
        plan=ctx.plan,
        progress=ctx.progress,
        facts=ctx.working_facts,
        now=ctx.now,
        version=version,
        supersedes=ctx.version,
        reason=reason,
        acting=ctx.working_acting,
    )
    delta = diff(ctx.packet, packet, material_shift=ctx.plan.material_shift)
    # Only one proposal stands at a time: the newest, carrying every pending change, wins.
    await _supersede_standing(ctx, version=version, by=by)
    if not delta.material_changes:
        await take_effect(ctx, ctx.changes, by=by)
        return None
    ctx.changes = proposed(ctx.changes, version)
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
            "facts": [c.as_json() for c in ctx.changes],
        },
    )
    line = msg.PacketProposedLine(
        version=version,
        counts=delta_counts(delta),
        reason=reason,
        by=by,
        summary=summary,
        facts=tuple(c.describe(clock=ctx.local_time) for c in ctx.changes),
        changes=tuple(change_rows(delta.material_changes)),
    )
    await post(ctx, to=ctx.plan.channel, message=line, dedupe_key=proposal_key(version))
    return packet, summary


async def _supersede_standing(ctx: RunContext, *, version: int, by: str) -> None:
    for stale in await ctx.tx.packets.in_state(ctx.run, str(PacketState.PROPOSED)):
        await ctx.tx.packets.set_state_cas(
            ctx.run,
            stale.version,
            from_state=str(PacketState.PROPOSED),
            to_state=str(PacketState.SUPERSEDED),
            at=ctx.now,
        )
        await answer(ctx, key=proposal_key(stale.version), state="replaced", by=by, detail=f"by v{version}")


async def take_effect(ctx: RunContext, changes: tuple[PendingChange, ...], *, by: str) -> None:
    """`changes` become true: their packet was adopted, or none needed to carry them. A delegate
    switch changes who acts from this moment, and the ledger says so."""
    ctx.make_true(changes)
    for change in changes:
        if change.kind is ChangeKind.DELEGATE:
            await ledger(
                ctx,
                actor=by,
                kind="acting_changed",
                payload={
                    "role": change.role,
                    "from": change.from_user,
                    "to": change.to_user,
                    "change": change.seq,
                    "reported_by": change.by,
                },
            )


def proposal_key(version: int) -> str:
    """The dedupe key of a proposal's Adopt/Reject line, which its answer updates in place."""
    return f"proposal:v{version}"
