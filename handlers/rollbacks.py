"""A typed rollback asks the room; one click on its Confirm button answers it, once.

`request_rollback` records the request on the run (`RunContext.requests`) and posts the question
to the war room: which cohorts move, from what percentage to what. `answer` is called by the
rollback use case when a Confirm click names a request: a request already answered (confirmed,
or retired as outdated) moves nothing and says what happened and what is current; a request
rendered for an older packet version is retired as outdated. Either way the question's message is
updated in place (through the outbox, after the commit) to say who did what when, without its
button. A click refused for who clicked (not allowed to roll back) leaves the request open for
someone who is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from handlers.commands import RequestRollback, Rollback
from handlers.context import RunContext, refuse, save
from handlers.deps import Deps
from handlers.flow import on_run
from handlers.outbox import post
from handlers.outcome import Outcome
from packets import messages as msg
from packets.authority import Refused
from packets.engine.progress import CheckpointState

Scope = Literal["cohort", "all"]
_KIND = "rollbacks"


def changes(ctx: RunContext, scope: Scope) -> list[dict[str, Any]]:
    """What a rollback of `scope` would move now: [{cohort, before, after}] in percent."""
    traffic = ctx.progress.traffic
    if scope == "all":
        return [
            {"cohort": cohort, "before": pct, "after": 0.0}
            for cohort, pct in sorted(traffic.items())
            if pct > 0
        ]
    order = [c.id for c in ctx.packet.timeline]
    # The engine's choice (`Draft.traffic_flight`): the first traffic checkpoint in flight.
    flights = ctx.progress.flights(order)
    checkpoint = next((c for c in flights if ctx.plan.checkpoint(c).traffic is not None), None)
    if checkpoint is None and ctx.progress.in_hypercare:
        done = [
            c
            for c in order
            if ctx.plan.checkpoint(c).traffic is not None
            and (state := ctx.progress.checkpoints.get(c)) is not None
            and state.state is CheckpointState.DONE
        ]
        checkpoint = done[-1] if done else None
    spec = ctx.plan.checkpoint(checkpoint).traffic if checkpoint is not None else None
    progress = ctx.progress.checkpoints.get(checkpoint) if checkpoint is not None else None
    if spec is None or progress is None or progress.previous_percent is None:
        return []
    before = traffic.get(spec.cohort, 0.0)
    if before == progress.previous_percent:
        return []
    return [{"cohort": spec.cohort, "before": before, "after": progress.previous_percent}]


def traffic_now(ctx: RunContext) -> str:
    shares = ", ".join(f"{cohort} {pct:g}%" for cohort, pct in sorted(ctx.progress.traffic.items()))
    return f"the run is {ctx.progress.state}" + (f", traffic {shares}" if shares else ", no traffic moved")


def _question(request_id: str, record: dict[str, Any]) -> msg.RollbackRequested:
    return msg.RollbackRequested(
        version=record["version"],
        scope=record["scope"],
        reason=record["reason"],
        rollback=request_id,
        by=record["by"],
        changes=tuple(record["changes"]),
        outcome=record.get("outcome"),
        target_key=_key(request_id) if record.get("outcome") else None,
    )


def _key(request_id: str) -> str:
    return f"rollback:{request_id}"


async def request_rollback(cmd: RequestRollback, deps: Deps) -> Outcome:
    async def body(ctx: RunContext) -> Outcome:
        # Anyone acting for a role of the plan may ask the room; only start-and-rollback confirms.
        if not ctx.roster.roles_of(cmd.user):
            raise Refused(f"{cmd.user} acts for no role in this plan, so may not ask for a rollback.")
        requests = dict(ctx.requests.get(_KIND) or {})
        request_id = f"rb-{len(requests) + 1}"
        record = {
            "scope": cmd.scope,
            "reason": cmd.reason or "rollback requested",
            "by": cmd.user,
            "at": ctx.now.isoformat(),
            "version": ctx.version,
            "changes": changes(ctx, cmd.scope),
        }
        requests[request_id] = record
        ctx.requests = {**ctx.requests, _KIND: requests}
        await post(
            ctx, to=ctx.plan.channel, message=_question(request_id, record), dedupe_key=_key(request_id)
        )
        await save(ctx)
        return Outcome.done(
            "Rollback asked in the war room; it moves traffic once someone who may roll back clicks "
            "Confirm on that message.",
            run=ctx.run,
            current_version=ctx.version,
            request=request_id,
        )

    return await on_run(cmd.run, user=cmd.user, action=f"request rollback {cmd.scope}", deps=deps, body=body)


async def settle(ctx: RunContext, cmd: Rollback, *, state: str, detail: str) -> None:
    """Mark the request answered and update its message in place (after the commit)."""
    assert cmd.request is not None
    requests = dict(ctx.requests.get(_KIND) or {})
    record = dict(requests[cmd.request])
    record["outcome"] = {"state": state, "by": cmd.user, "at": ctx.now.isoformat(), "detail": detail}
    requests[cmd.request] = record
    ctx.requests = {**ctx.requests, _KIND: requests}
    await post(
        ctx,
        to=ctx.plan.channel,
        message=_question(cmd.request, record),
        dedupe_key=f"{_key(cmd.request)}:{state}",
    )


async def stale(ctx: RunContext, cmd: Rollback) -> Outcome | None:
    """The answer to a Confirm click that must move nothing, or None when the click may proceed.

    Written in the click's transaction (not raised): the request is retired for good, which a
    refusal's rollback would undo."""
    if cmd.request is None:
        return None
    record = (ctx.requests.get(_KIND) or {}).get(cmd.request)
    if record is None:
        reason = "That rollback question is not one this run asked; type /cutover rollback again."
    elif record.get("outcome"):
        done = record["outcome"]
        when = ctx.local_time(datetime.fromisoformat(done["at"]))
        reason = (
            f"That rollback was already {done['state']} by <@{done['by']}> at {when}; "
            f"nothing moved now. Now {traffic_now(ctx)}."
        )
    elif record["version"] != ctx.version:
        reason = (
            f"That rollback was asked against packet v{record['version']}; v{ctx.version} is current, "
            f"so it is outdated and moved nothing. Now {traffic_now(ctx)}. "
            "Type the rollback again if it is still wanted."
        )
        await settle(ctx, cmd, state="outdated", detail=f"v{ctx.version} became current")
    else:
        return None
    await refuse(ctx, user=cmd.user, action=f"rollback {cmd.scope}", reason=reason)
    await save(ctx)
    return Outcome.refused(reason, run=ctx.run, current_version=ctx.version)
