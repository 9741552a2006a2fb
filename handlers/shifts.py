"""Sending the traffic shifts the engine queued, after the transaction that queued them.

`handlers.effects` writes each `ShiftTraffic` effect as a `traffic_shifts` row in the use case's
transaction. This sends them: claim the due rows (one short transaction), ask the actuator with no
transaction open and no run locked, then feed its answer to the engine as `ActuationSucceeded` or
`ActuationFailed` in a transaction of its own that also closes the row. A run's shifts go one at a
time, in the order the engine asked for them.

Serve runs `send_due` from the scheduler's background loop, woken by `Deps.on_change`; the tests
and the rehearsal call `drain` right after each use case (`Deps.drain_shifts`), so their simulated
clock reads the same time the use case did.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from handlers import effects
from handlers.context import ledger, load, plan_from_text, save
from handlers.deps import Deps
from handlers.ports import ActuationResult, Actuator, Shift
from packets.plan import Plan
from store.errors import StoreError
from store.shifts import ShiftRow, ShiftState
from store.uow import Transaction

log = logging.getLogger("cutover_bot.handlers")

# Longer than any actuator call takes (its own timeout is seconds): a live sender keeps its rows.
LEASE = timedelta(minutes=5)
BATCH = 50


async def drain(deps: Deps) -> int:
    """Send every due shift and feed every answer, including shifts the answers queue in turn."""
    total = 0
    while sent := await send_due(deps):
        total += sent
    return total


async def send_due(deps: Deps, *, limit: int = BATCH) -> int:
    """One claim's worth; how many rows it handled. Re-raises the first failure after the rest."""
    now = deps.clock.now()
    actuators: dict[int, Actuator] = {}
    async with deps.uow.transaction() as tx:
        rows = await tx.shifts.claim(now=now, limit=limit, lease=LEASE)
        for row in rows:
            if row.state == ShiftState.SENDING:
                actuators[row.id] = deps.actuator_for(await _plan_of(tx, row.run_id))
    failed: set[str] = set()
    first: Exception | None = None
    for row in rows:
        if row.run_id in failed:
            continue  # its later shifts wait (lease) rather than overtake an answer not yet fed
        try:
            await _send(row, actuators.get(row.id), deps)
        except Exception as exc:  # one run's failure never stops the others'
            log.exception("traffic shift %s of run %s: the answer was not fed", row.id, row.run_id)
            failed.add(row.run_id)
            first = first or exc
    if first is not None:
        raise first
    return len(rows)


async def _plan_of(tx: Transaction, run: str) -> Plan:
    row = await tx.runs.get(run)
    plan_row = await tx.plans.get(row.plan_revision) if row is not None else None
    if plan_row is None:
        raise StoreError(f"run {run} has lost its plan revision")
    return plan_from_text(plan_row.content, plan_row.source)


async def _send(row: ShiftRow, actuator: Actuator | None, deps: Deps) -> None:
    if actuator is None:  # answered before; only the feeding is left
        answer = ActuationResult(ok=bool(row.ok), detail=row.detail or "")
        held_until = None
    else:
        answer = await actuator.shift(_shift(row))
        held_until = row.claimed_until
    try:
        async with deps.uow.transaction(run_id=row.run_id) as tx:
            ctx = await load(tx, row.run_id, deps.clock.now())
            assert ctx is not None  # a run is never deleted
            mine = await tx.shifts.finish(
                row.id, held_until=held_until, ok=answer.ok, detail=answer.detail, at=ctx.now
            )
            if not mine:
                # The lease ran out and another sender took the row over: its answer counts.
                log.warning("traffic shift %s of run %s was taken over; answer dropped", row.id, row.run_id)
                return
            await effects.answer(ctx, row.payload, answer, deps)
            await save(ctx)
    except Exception as exc:
        await _write_down(row, answer, held_until=held_until, error=type(exc).__name__, deps=deps)
        raise
    deps.on_change(row.run_id)


async def _write_down(
    row: ShiftRow, answer: ActuationResult, *, held_until: datetime | None, error: str, deps: Deps
) -> None:
    """The control plane answered, then the transaction failed: keep the answer, never resend."""
    async with deps.uow.transaction(run_id=row.run_id) as tx:
        ctx = await load(tx, row.run_id, deps.clock.now())
        assert ctx is not None
        if held_until is None:
            return  # already written down when it first failed; it is tried again at each wake-up
        await tx.shifts.answer(row.id, held_until=held_until, ok=answer.ok, detail=answer.detail, at=ctx.now)
        payload = row.payload
        shift = {k: payload.get(k) for k in ("cohort", "percent", "key", "checkpoint")}
        await ledger(
            ctx,
            actor="actuator",
            kind="failed_after_shift",
            payload={"action": "traffic shift", "error": error, "ok": answer.ok, "shifts": [shift]},
        )


def _shift(row: ShiftRow) -> Shift:
    payload = row.payload
    return Shift(
        run=row.run_id,
        checkpoint=payload.get("checkpoint") or "",
        cohort=str(payload["cohort"]),
        percent=float(payload["percent"]),
        packet_version=int(payload["packet_version"]),
        idempotency_key=row.idempotency_key,
    )
