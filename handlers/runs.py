"""Use cases for the run as a whole: open, sign off, and every run-wide move asked of the engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from handlers import rollbacks, run_card
from handlers.commands import EngineIntent, Move, OpenRun, Rollback, SignOff
from handlers.context import RunContext, plan_from_text, save
from handlers.deps import Deps
from handlers.effects import apply
from handlers.flow import on_run
from handlers.outbox import PLAN_KEY, Opening, post
from handlers.outcome import Outcome
from packets import messages as msg
from packets.authority import Refused
from packets.engine import events as ev
from packets.engine.progress import RunState
from packets.engine.table import new_run
from packets.packet import PacketState
from packets.plan import Plan, PlanInvalid
from packets.timeline import Facts, build_packet
from store.errors import RunExists
from store.uow import Transaction


async def open_run(cmd: OpenRun, deps: Deps) -> Outcome:
    """Open a run of a plan in its war-room channel; packet v1 is authoritative from the start."""
    try:
        plan = plan_from_text(cmd.plan_text, cmd.source)
    except PlanInvalid as invalid:
        lines = "\n".join(invalid.lines()[:10])
        return Outcome.refused(f"The plan is refused:\n{lines}")
    if cmd.channel != plan.channel:
        return Outcome.refused(f"Plan '{plan.plan}' runs in <#{plan.channel}>, not here.")
    # Opening a run posts sign-off buttons to the war room and starts its ledger: only someone the
    # plan names (a role's primary or one of its delegates) may do that, not anyone in the channel.
    if cmd.user not in plan.members:
        return Outcome.refused(
            f"Only the people named in plan '{plan.plan}''s roles (a primary or a delegate) may open "
            f"it; <@{cmd.user}> is in none of its roles."
        )
    now = deps.clock.now()
    try:
        async with deps.uow.transaction() as tx:
            active = await tx.runs.active_in_channel(plan.channel)
            if active is not None:
                # Refusals are ledgered: this one on the chain of the run that is in the way.
                reason = f"Run {active.run_id} is already active in this channel; finish or abort it first."
                await tx.ledger.append(
                    run_id=active.run_id,
                    actor=cmd.user,
                    kind="refused",
                    at=now,
                    payload={
                        "action": "open run",
                        "reason": reason,
                        "current_version": active.authoritative_version,
                    },
                )
                return Outcome.refused(
                    reason, run=active.run_id, current_version=active.authoritative_version
                )
            superseded = await superseded_refusal(tx, plan)
            if superseded is not None:
                return Outcome.refused(superseded)
            run = await create_run(
                tx, plan=plan, text=cmd.plan_text, source=cmd.source, user=cmd.user, now=now
            )
    except RunExists:
        # The database keeps one active run per channel: someone else's open committed first.
        return Outcome.refused(
            f"Someone opened a run in <#{plan.channel}> a moment ago; /cutover status shows it."
        )
    deps.on_change(run)
    return Outcome.done(
        f"Opened run {run} of {plan.plan} (revision {plan.revision[:12]}); "
        f"waiting for sign-off by {', '.join(plan.authority.signoff)}.",
        run=run,
        current_version=1,
        revision=plan.revision,
    )


def run_id_for(plan: Plan, at: datetime) -> str:
    """A run's id: its plan and the second it was opened, in the plan window's offset."""
    return f"{plan.plan}-{at.astimezone(plan.window.start.tzinfo):%Y%m%d-%H%M%S}"


async def superseded_refusal(tx: Transaction, plan: Plan) -> str | None:
    """Why `plan`'s revision may not be opened again: a run of it was superseded by a newer one."""
    for row in await tx.runs.of_revision(plan.revision):
        if row.state == str(RunState.SUPERSEDED):
            ended = [e for e in await tx.ledger.entries(row.run_id) if e.kind == "run_superseded"]
            by = ended[-1].payload.get("superseded_by") if ended else None
            return (
                f"Revision {plan.revision[:12]} of {plan.plan} was superseded by run {by} "
                f"(it replaced run {row.run_id}); open the newer revision instead."
            )
    return None


async def create_run(
    tx: Transaction,
    *,
    plan: Plan,
    text: str,
    source: str,
    user: str,
    now: datetime,
    supersedes: str | None = None,
) -> str:
    """Write a new run of `plan` in `tx`: its row, packet v1, its first ledger entries and the
    room's plan summary and packet card. `supersedes` links it to the run it replaces."""
    run = run_id_for(plan, now)
    packet = build_packet(
        plan,
        Facts(),
        version=1,
        supersedes=None,
        reason="initial timeline from the plan",
        acting={},
        state=PacketState.AUTHORITATIVE,
        # Opened after the window started (a successor run, say): nothing is planned in the past.
        now=now,
    )
    progress = new_run(run_id=run, plan=plan, packet=packet, at=now)
    await tx.plans.add(revision=plan.revision, plan_id=plan.plan, content=text, at=now, source=source)
    await tx.runs.create(
        run_id=run,
        plan_id=plan.plan,
        plan_revision=plan.revision,
        channel=plan.channel,
        state=str(progress.state),
        progress={"engine": progress.as_json(), "facts": Facts().as_json()},
        acting={},
        at=now,
        authoritative_version=1,
    )
    await tx.packets.add(
        run_id=run,
        version=1,
        state=str(PacketState.AUTHORITATIVE),
        hash=packet.hash,
        body=packet.as_json(),
        reason=packet.reason,
        supersedes=None,
        at=now,
    )
    link = {"supersedes": supersedes} if supersedes is not None else {}
    await tx.ledger.append(
        run_id=run,
        actor=user,
        kind="run_opened",
        at=now,
        payload={
            "plan": plan.plan,
            "revision": plan.revision,
            "source": source,
            "channel": plan.channel,
            "change_record": plan.change_record,
            **link,
        },
    )
    await tx.ledger.append(
        run_id=run,
        actor=user,
        kind="packet_authoritative",
        at=now,
        payload={"version": 1, "hash": packet.hash, "reason": packet.reason},
    )
    summary = run_card.opening_summary(plan)
    opening = Opening(tx=tx, run=run, now=now)
    await post(opening, to=plan.channel, message=summary, dedupe_key=PLAN_KEY)
    await post(
        opening, to=plan.channel, message=msg.PacketPosted(packet=packet.as_json()), dedupe_key="packet:v1"
    )
    return run


async def sign_off(cmd: SignOff, deps: Deps) -> Outcome:
    async def body(ctx: RunContext) -> Outcome:
        # Which revision and which role may be signed is the engine's to say (packets.engine.rows).
        given = ev.SignoffGiven(at=ctx.now, user=cmd.user, role=cmd.role or None, revision=cmd.revision)
        await apply(ctx, given, deps)
        role = next(s.role for s in ctx.progress.signoffs.values() if s.user == cmd.user)
        remaining = [r for r in ctx.plan.authority.signoff if r not in ctx.progress.signoffs]
        signed = msg.SignoffRecorded(
            revision=cmd.revision, role=role, by=cmd.user, remaining=tuple(remaining)
        )
        await post(ctx, to=ctx.plan.channel, message=signed)
        # The plan summary is updated in place after the commit's use case (`handlers.run_card`):
        # the signed role's button gives way to who and when.
        await save(ctx)
        left = (
            f"still waiting for {', '.join(remaining)}"
            if remaining
            else "every sign-off is in; the run may start"
        )
        return Outcome.done(
            f"Signed off revision {cmd.revision[:12]} as {role}; {left}.",
            run=ctx.run,
            current_version=ctx.version,
        )

    return await on_run(cmd.run, user=cmd.user, action="sign off", deps=deps, body=body)


def _state_outcome(ctx: RunContext, verb: str) -> Outcome:
    return Outcome.done(
        f"{verb}; the run is {ctx.progress.state}.",
        run=ctx.run,
        current_version=ctx.version,
        state=str(ctx.progress.state),
    )


@dataclass(frozen=True, slots=True)
class _MoveRule:
    verb: str
    # The reason logged when none was typed; None: the move's event carries no reason.
    default_reason: str | None
    event: Callable[[datetime, str, str], ev.Event]


_MOVES: dict[Move, _MoveRule] = {
    Move.START: _MoveRule("Started", None, lambda at, user, _r: ev.Start(at=at, user=user)),
    Move.PAUSE: _MoveRule(
        "Paused", "paused by hand", lambda at, user, r: ev.Pause(at=at, user=user, reason=r)
    ),
    Move.RESUME: _MoveRule("Resumed", None, lambda at, user, _r: ev.Resume(at=at, user=user)),
    Move.FREEZE: _MoveRule(
        "Frozen", "frozen by hand", lambda at, user, r: ev.Freeze(at=at, user=user, reason=r)
    ),
    Move.UNFREEZE: _MoveRule("Unfrozen", None, lambda at, user, _r: ev.Unfreeze(at=at, user=user)),
    Move.ABORT: _MoveRule("Aborted", "aborted", lambda at, user, r: ev.Abort(at=at, user=user, reason=r)),
}


async def ask_engine(cmd: EngineIntent | Rollback, deps: Deps) -> Outcome:
    """Start, pause, resume, freeze, unfreeze, abort or roll back: one engine event at the
    transaction's instant, saved. An abort calls the run off while no traffic is on the new path
    (after that it is a rollback); a rollback confirmed by a button must match the current packet."""
    if isinstance(cmd, Rollback):
        action = f"rollback {cmd.scope}"
        verb = "Rolled back everything" if cmd.scope == "all" else "Rolled back the current cohort"
        reason = cmd.reason or "rollback requested"
    else:
        rule = _MOVES[cmd.move]
        action, verb = str(cmd.move), rule.verb
        reason = (cmd.reason or rule.default_reason) if rule.default_reason is not None else ""

    def event(ctx: RunContext) -> ev.Event:
        if isinstance(cmd, Rollback) and cmd.request is not None:
            # The room's question decides what is rolled back and why, not the button.
            asked = ctx.requests["rollbacks"][cmd.request]
            scope: Literal["cohort", "all"] = "all" if asked["scope"] == "all" else "cohort"
            return ev.RollbackRequested(at=ctx.now, user=cmd.user, scope=scope, reason=asked["reason"])
        if not isinstance(cmd, Rollback):
            refusal = handoff_refusal(ctx) if cmd.move is Move.START else None
            if refusal is not None:
                raise Refused(refusal)
            return _MOVES[cmd.move].event(ctx.now, cmd.user, reason)
        if cmd.version is not None and cmd.version != ctx.version:
            raise Refused(
                f"That rollback was confirmed against packet v{cmd.version}; v{ctx.version} is current. "
                "Type the rollback again if it is still wanted."
            )
        return ev.RollbackRequested(at=ctx.now, user=cmd.user, scope=cmd.scope, reason=reason)

    async def body(ctx: RunContext) -> Outcome:
        if isinstance(cmd, Rollback):
            answered = await rollbacks.stale(ctx, cmd)
            if answered is not None:
                return answered
        happened = event(ctx)
        await apply(ctx, happened, deps)
        said = verb
        if isinstance(happened, ev.RollbackRequested):
            said = "Rolled back everything" if happened.scope == "all" else "Rolled back the current cohort"
        if isinstance(cmd, Rollback) and cmd.request is not None:
            await rollbacks.settle(ctx, cmd, state="confirmed", detail=said)
        await save(ctx)
        return _state_outcome(ctx, said)

    return await on_run(cmd.run, user=cmd.user, action=action, deps=deps, body=body)


def handoff_refusal(ctx: RunContext) -> str | None:
    """Why a bundle may not be handed to its deployment queue now, or None when it may."""
    bundle = ctx.plan.bundle
    if bundle is None:
        return None
    window = bundle.handoff.window
    if window.contains(ctx.now):
        return None
    tz = window.start.tzinfo
    when = f"{window.start.astimezone(tz):%Y-%m-%d %H:%M}-{window.end.astimezone(tz):%H:%M %z}"
    now = ctx.now.astimezone(tz)
    side = "has not opened yet" if ctx.now < window.start else "has closed"
    return (
        f"The handoff to deployment queue {bundle.handoff.queue} is only accepted inside its window "
        f"{when}; it is {now:%H:%M}, and the window {side}."
    )
