"""The run's parent message in the war room, kept live: its plan summary with the run at a glance.

The plan summary `/cutover open` posts is the run's parent message (its thread holds the rest,
`bot.threads`). After every use case that changed the run (its ledger moved), the summary is
updated in place (an outbox row with `target_key`, sent as chat.update): the sign-offs, then the
run at a glance as `/cutover status` tells it (`handlers.status.at_a_glance`): its state, what is
in flight with planned times, traffic per cohort, open holds, checkpoints done, the forecast.
"""

from __future__ import annotations

from handlers.context import RunContext
from handlers.outbox import PLAN_KEY, post
from handlers.status import at_a_glance
from packets import messages as msg
from packets.plan import Plan


def opening_summary(plan: Plan) -> msg.PlanSummary:
    """The summary a new run posts: no sign-off yet (not even of the same revision)."""
    return msg.PlanSummary(
        plan=plan.plan,
        title=plan.title,
        revision=plan.revision,
        change_record=plan.change_record,
        window={"start": plan.window.start.isoformat(), "end": plan.window.end.isoformat()},
        checkpoints=len(plan.checkpoints),
        signoffs=tuple(
            {"role": role, "acting": plan.roles[role].primary, "signed_by": None}
            for role in plan.authority.signoff
        ),
    )


# The card stays one glance (and inside Slack's limits on a 200-checkpoint run with many holds);
# `/cutover status` has the rest.
CARD_LINES = 12


def _brief(lines: list[str]) -> tuple[str, ...]:
    if len(lines) <= CARD_LINES:
        return tuple(lines)
    more = len(lines) - (CARD_LINES - 1)
    return (*lines[: CARD_LINES - 1], f"…and {more} more lines: `/cutover status` shows them all.")


async def refresh(ctx: RunContext) -> None:
    """Queue the run's parent message, updated in place with the run as it is now."""
    signoffs = ctx.progress.signoffs
    opening = opening_summary(ctx.plan)
    card = msg.PlanSummary(
        plan=opening.plan,
        title=opening.title,
        revision=opening.revision,
        change_record=opening.change_record,
        window=opening.window,
        checkpoints=opening.checkpoints,
        signoffs=tuple(
            {
                "role": r,
                "acting": ctx.roster.acting_user(r),
                "signed_by": signoffs[r].user if r in signoffs else None,
                "signed_at": signoffs[r].at.isoformat() if r in signoffs else None,
            }
            for r in ctx.plan.authority.signoff
        ),
        target_key=PLAN_KEY,
        state=ctx.progress.state.words,
        live=_brief(at_a_glance(ctx, every_checkpoint=False)),
    )
    await post(ctx, to=ctx.plan.channel, message=card)
