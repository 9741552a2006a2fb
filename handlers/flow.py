"""The shape every use case on a run shares: lock, load, decide, write, commit, then tell.

`on_run` opens the run's transaction and hands a loaded `RunContext` to the use case's body. A
`packets.authority.Refused` raised by the body or by the stage engine
becomes one `refused` ledger entry and an `Outcome` with the reason and the current packet
version; nothing else the body wrote survives, because the refusal is written in a fresh
transaction after a rollback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta

from handlers import drift, run_card, shifts, witness
from handlers.context import RunContext, load, refuse
from handlers.deps import Deps
from handlers.outcome import Outcome
from packets.authority import Refused
from store.errors import RunNotFound

log = logging.getLogger("cutover_bot.handlers")


Body = Callable[[RunContext], Awaitable[Outcome]]

LOG_DONE = "%s on run %s by %s: %s"
LOG_REFUSED = "refused %s on run %s by %s: %s"
# Someone in no role of the plan gets at most one `refused` ledger entry per run and this long;
# every attempt is still answered and logged (typing in the war room must not flood the ledger).
STRANGER_LEDGER_EVERY = timedelta(minutes=1)
# Slack user ids; the bot's own actors (scheduler, engine, Alertmanager) are not people.
_PERSON = re.compile(r"[UW][A-Z0-9]{2,}")


def is_person(user: str) -> bool:
    return _PERSON.fullmatch(user) is not None


async def on_run(run: str, *, user: str, action: str, deps: Deps, body: Body) -> Outcome:
    now = deps.clock.now()
    if is_person(user) and await _stranger(run, user, deps):
        return await _refuse_stranger(run, user=user, action=action, deps=deps)
    reason: str | None = None
    try:
        async with deps.uow.transaction(run_id=run) as tx:
            ctx = await load(tx, run, now)
            if ctx is None:
                raise RunNotFound(run)
            try:
                outcome = await body(ctx)
                ledgered = await settle(ctx, outcome)
            except Refused as exc:
                reason = str(getattr(exc, "reason", None) or exc)
                raise _RollBack from exc
    except RunNotFound:
        return Outcome.refused(f"There is no run '{run}'.")
    except _RollBack:
        return await _record_refusal(run, user=user, action=action, reason=reason or "refused", deps=deps)
    await told(run, user=user, action=action, outcome=outcome, ledgered=ledgered, deps=deps)
    return outcome


async def settle(ctx: RunContext, outcome: Outcome) -> bool:
    """What follows every use case on a run, in its transaction: the forecast recomputed (a
    material drift proposed, an overrun told), and when the run changed, its card refreshed and
    the witness posted if due. True when the run's ledger moved."""
    if outcome.ok:
        await drift.propose_if_drifted(ctx)
        await drift.tell_overrun(ctx)
    after = ctx.tx.ledger.written_head(ctx.run)
    if after is None:
        return False
    await run_card.refresh(ctx)
    await witness.witness_if_due(ctx, after)
    return True


async def told(run: str, *, user: str, action: str, outcome: Outcome, ledgered: bool, deps: Deps) -> None:
    """After the commit: log it, tell the scheduler and the card, send queued traffic shifts."""
    # Consequential means ledgered: one INFO line for it; a tick that changed nothing is DEBUG.
    log.log(
        logging.INFO if ledgered else logging.DEBUG,
        LOG_DONE,
        action,
        run,
        user,
        # The log formatter redacts on the way out (bot.log_format).
        (outcome.message.splitlines()[0] if outcome.message else "")[:200],
    )
    deps.on_change(run)
    if deps.drain_shifts:
        await shifts.drain(deps)


class _RollBack(Exception):
    """Unwinds the body's transaction so a refusal changes nothing but the ledger."""


async def refuse_on_run(run: str, *, user: str, action: str, reason: str, deps: Deps) -> Outcome:
    """Refuse `action` on `run` before its use case runs (e.g. a click from the wrong place): one
    `refused` ledger entry, nothing else. An unknown run is refused without a trace."""
    try:
        return await _record_refusal(run, user=user, action=action, reason=reason, deps=deps)
    except RunNotFound:
        return Outcome.refused(f"There is no run '{run}'.")


async def _record_refusal(run: str, *, user: str, action: str, reason: str, deps: Deps) -> Outcome:
    async with deps.uow.transaction(run_id=run) as tx:
        ctx = await load(tx, run, deps.clock.now())
        if ctx is None:
            raise RunNotFound(run)
        await refuse(ctx, user=user, action=action, reason=reason)
        version = ctx.version
    log.info(LOG_REFUSED, action, run, user, reason[:200])
    return Outcome.refused(reason, run=run, current_version=version)


async def _stranger(run: str, user: str, deps: Deps) -> bool:
    """Whether `user` may never act for any role of the run's plan (read without the run's lock)."""
    async with deps.uow.transaction(read_only=True) as tx:
        ctx = await load(tx, run, deps.clock.now())
    if ctx is None:
        return False  # the use case answers "no such run"
    return user not in ctx.plan.members and user not in ctx.acting.values()


async def _refuse_stranger(run: str, *, user: str, action: str, deps: Deps) -> Outcome:
    """Refuse someone in no role without the run's lock; ledgered at most once a minute each."""
    now = deps.clock.now()
    reason = f"{user} does not act for any role in this plan; “{action}” is refused."
    async with deps.uow.transaction(read_only=True) as tx:
        ctx = await load(tx, run, now)
        last = await tx.ledger.last_by(run, actor=user, kind="refused")
    if ctx is None:
        return Outcome.refused(f"There is no run '{run}'.")
    version = ctx.version
    if last is None or now - last.at >= STRANGER_LEDGER_EVERY:
        # A transaction without the run's lock: the ledger's head row keeps the chain in order.
        async with deps.uow.transaction() as tx:
            ctx = await load(tx, run, now)
            if ctx is not None:
                await refuse(ctx, user=user, action=action, reason=reason)
    log.info(LOG_REFUSED, action, run, user, reason[:200])
    return Outcome.refused(reason, run=run, current_version=version)
