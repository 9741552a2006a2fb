"""The shape every use case on a run shares: lock, load, decide, write, commit, then tell.

`on_run` opens the run's transaction and hands a loaded `RunContext` to the use case's body. A
`packets.authority.Refused` raised by the body or by the stage engine
becomes one `refused` ledger entry and an `Outcome` with the reason and the current packet
version; nothing else the body wrote survives, because the refusal is written in a fresh
transaction after a rollback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from handlers.context import RunContext, ledger, load, refuse
from handlers.deps import Deps
from handlers.outcome import Outcome
from packets.authority import Refused
from packets.redact import redact
from store.errors import RunNotFound

log = logging.getLogger("cutover_bot.handlers")


Body = Callable[[RunContext], Awaitable[Outcome]]


async def on_run(run: str, *, user: str, action: str, deps: Deps, body: Body) -> Outcome:
    now = deps.clock.now()
    reason: str | None = None
    loaded: RunContext | None = None
    try:
        async with deps.uow.transaction(run_id=run) as tx:
            loaded = ctx = await load(tx, run, now)
            if ctx is None:
                raise RunNotFound(run)
            try:
                outcome = await body(ctx)
            except Refused as exc:
                reason = redact(str(getattr(exc, "reason", None) or exc))
                raise _RollBack from exc
    except RunNotFound:
        return Outcome.refused(f"There is no run '{redact(run)}'.")
    except _RollBack:
        return await _record_refusal(run, user=user, action=action, reason=reason or "refused", deps=deps)
    except Exception as exc:
        shifts = loaded.shifts_made if loaded is not None else []
        if not shifts:
            raise
        # The control plane moved traffic, then the transaction failed: the state did not change,
        # but the record must say what really happened before the error goes up.
        log.exception("%s on run %s failed after %d traffic shifts", action, run, len(shifts))
        await _record_failure(
            run, user=user, action=action, error=type(exc).__name__, shifts=shifts, deps=deps
        )
        raise
    deps.on_change(run)
    return outcome


async def _record_failure(
    run: str, *, user: str, action: str, error: str, shifts: list[dict[str, Any]], deps: Deps
) -> None:
    async with deps.uow.transaction(run_id=run) as tx:
        ctx = await load(tx, run, deps.clock.now())
        assert ctx is not None
        await ledger(
            ctx,
            actor=user,
            kind="failed_after_shift",
            payload={"action": action, "error": error, "shifts": shifts},
        )


class _RollBack(Exception):
    """Unwinds the body's transaction so a refusal changes nothing but the ledger."""


async def _record_refusal(run: str, *, user: str, action: str, reason: str, deps: Deps) -> Outcome:
    async with deps.uow.transaction(run_id=run) as tx:
        ctx = await load(tx, run, deps.clock.now())
        assert ctx is not None
        await refuse(ctx, user=user, action=action, reason=reason)
        version = ctx.version
    return Outcome.refused(reason, run=run, current_version=version)
