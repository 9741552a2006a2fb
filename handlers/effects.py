"""Carrying out what the stage engine decided, inside the use case's transaction.

Ledger effects become ledger entries, notifications become outbox rows, hold effects update the
holds table, and traffic shifts become `traffic_shifts` rows. All of it commits with the new run
state. No shift is sent from here: `handlers.shifts` sends them after the commit (no HTTP call
while the run is locked) and hands the actuator's answer back through `answer`, in a transaction
of its own, as the `ActuationSucceeded` or `ActuationFailed` event the engine waits for.
"""

from __future__ import annotations

import logging
from typing import Any

from handlers.context import RunContext, ledger
from handlers.deps import Deps
from handlers.notices import hold_payload
from handlers.outbox import post
from handlers.ports import ActuationResult
from packets import messages as msg
from packets.authority import Refused
from packets.engine import effects as fx
from packets.engine import events as ev
from packets.engine import table as stages
from packets.packet import HoldSource
from packets.plan import HYPERCARE_CHECKPOINT

log = logging.getLogger("cutover_bot.handlers")


async def apply(ctx: RunContext, event: ev.Event, deps: Deps) -> stages.Transition:
    """Step the engine with `event` and carry out every effect. Raises `Refused` on refusal."""
    transition = stages.step(ctx.progress, event, plan=ctx.plan, packet=ctx.packet, roster=ctx.roster)
    return await carry_out(ctx, transition, deps)


async def carry_out(ctx: RunContext, transition: stages.Transition, deps: Deps) -> stages.Transition:
    ctx.progress = transition.progress
    for effect in transition.effects:
        await _record(ctx, effect)
    return transition


async def answer(ctx: RunContext, shift: dict[str, Any], result: ActuationResult, deps: Deps) -> None:
    """Feed the actuator's answer to a queued shift (`_queue_shift`'s payload) back to the engine."""
    shifted = msg.TrafficShift(
        checkpoint=shift.get("checkpoint"),
        cohort=str(shift["cohort"]),
        percent=float(shift["percent"]),
        previous_percent=float(shift["previous_percent"]),
        ok=result.ok,
        detail=result.detail,
    )
    await post(ctx, to=ctx.plan.channel, message=shifted)
    checkpoint, cohort, percent = shift.get("checkpoint"), str(shift["cohort"]), float(shift["percent"])
    event: ev.Event
    if result.ok:
        event = ev.ActuationSucceeded(at=ctx.now, checkpoint=checkpoint, cohort=cohort, percent=percent)
    else:
        event = ev.ActuationFailed(
            at=ctx.now,
            checkpoint=checkpoint,
            cohort=cohort,
            percent=percent,
            detail=result.detail or "refused",
        )
    try:
        transition = stages.step(ctx.progress, event, plan=ctx.plan, packet=ctx.packet, roster=ctx.roster)
    except Refused as exc:  # a late answer the engine no longer wants: keep it on record
        log.info("actuation answer not applicable: %s", exc)
        return
    await carry_out(ctx, transition, deps)


async def _queue_shift(ctx: RunContext, effect: fx.ShiftTraffic) -> None:
    await ctx.tx.shifts.queue(
        run_id=ctx.run,
        idempotency_key=effect.key,
        payload={
            "checkpoint": effect.checkpoint,
            "cohort": effect.cohort,
            "percent": effect.percent,
            "previous_percent": effect.previous_percent,
            "packet_version": effect.packet_version,
            "cause": effect.cause,
            "key": effect.key,
        },
        at=ctx.now,
    )


async def _record(ctx: RunContext, effect: fx.Effect) -> None:
    if isinstance(effect, fx.ShiftTraffic):
        await _queue_shift(ctx, effect)
    elif isinstance(effect, fx.Ledger):
        await ledger(ctx, actor=effect.actor, kind=effect.kind, payload=effect.payload)
    elif isinstance(effect, fx.OpenHold):
        hold = effect.hold
        await ctx.tx.holds.open(
            run_id=ctx.run,
            hold_id=hold.id,
            source=str(hold.source),
            reason=hold.reason,
            release_by=tuple(hold.release_by),
            at=hold.opened_at,
            checkpoint=hold.checkpoint,
            mode=hold.mode,
            packet_version=ctx.version,
            opened_by=hold.opened_by,
        )
        opened = msg.HoldOpened(
            version=ctx.version,
            hold=hold_payload(hold),
            by=hold.opened_by if hold.opened_by.startswith(("U", "W")) else None,
        )
        await post(ctx, to=ctx.plan.channel, message=opened)
    elif isinstance(effect, fx.CloseHold):
        await _close_hold(ctx, effect)
    elif isinstance(effect, fx.Notify):
        await _notify(ctx, effect)


async def _close_hold(ctx: RunContext, effect: fx.CloseHold) -> None:
    # The engine has already decided, under the run lock, that this hold closes now; the holds
    # table is its projection. A row that is missing or already closed means the projection
    # drifted: said in the log, not hidden.
    if effect.withdrawn:
        closed = await ctx.tx.holds.withdraw_cas(
            run_id=ctx.run,
            hold_id=effect.hold_id,
            by="engine",
            at=ctx.now,
            note="withdrawn: the run ended",
        )
    else:
        closed = await ctx.tx.holds.release_cas(
            run_id=ctx.run,
            hold_id=effect.hold_id,
            released_by=",".join(effect.by),
            released_as=",".join(effect.roles),
            at=ctx.now,
        )
        _record_release(ctx, effect.hold_id)
    if not closed:
        log.warning("hold %s of run %s was not open in the holds table", effect.hold_id, ctx.run)


def _record_release(ctx: RunContext, hold_id: str) -> None:
    """Later packets must not show a released plan hold, or an accepted conflict, as held again."""
    hold = ctx.progress.holds.get(hold_id)
    checkpoint = hold.checkpoint if hold is not None else None
    if hold is not None and checkpoint is not None and ctx.plan.has_checkpoint(checkpoint):
        if hold.source == HoldSource.PLAN:
            ctx.record_fact(lambda facts: facts.release(checkpoint))
        elif hold.source == HoldSource.CONFLICT:
            ctx.record_fact(lambda facts: facts.waive(checkpoint))


async def _notify(ctx: RunContext, effect: fx.Notify) -> None:
    message = effect.message
    if isinstance(message, msg.GateAlert):
        if _still_failing(ctx, str(message.checkpoint), str(message.gate)):
            return  # the room heard when it started failing; each repeat is in the ledger
        await post(ctx, to=ctx.plan.channel, message=message)
        if message.checkpoint == HYPERCARE_CHECKPOINT:
            # Hyper-care lasts days and the war room has gone home: the acting owners the engine
            # named (traffic checkpoint owners, start_and_rollback) hear it directly as well.
            for user in effect.users:
                await post(ctx, to=user, message=message)
        return
    await post(ctx, to=ctx.plan.channel, message=message)
    if effect.direct:
        for user in effect.users:
            await post(ctx, to=user, message=message)


def _still_failing(ctx: RunContext, checkpoint: str, gate: str) -> bool:
    """Whether the gate's reading before this one had failed too (so this is not news)."""
    history = ctx.progress.evidence_of(checkpoint).get(gate, ())
    return len(history) >= 2 and str(history[-2].outcome) != "pass"
