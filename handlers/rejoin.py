"""The bot invited to a war room it was not in: the run messages Slack refused there go again.

Slack answers `not_in_channel` (or `channel_not_found` for a private channel the bot cannot see)
to every message of a run whose war room the bot was never invited to; the outbox marks them
failed and the person who acted is told (bot/undelivered.py). When the bot joins that channel,
the failed messages of the channel's runs still under way go back to the queue, in their old
order, so the room gets the plan summary and its thread as if the bot had been there. Runs that
ended are left as they were: their record is the evidence, not a late burst in the room.
"""

from __future__ import annotations

from typing import Final

from handlers.deps import Deps

# Slack's answers that mean "the bot is not there", as the failed row's error ends with them.
ABSENT: Final = ("not_in_channel", "channel_not_found")


async def bot_joined(channel: str, deps: Deps) -> int:
    """Requeue what Slack refused in `channel` for its runs under way; how many messages."""
    async with deps.uow.transaction() as tx:
        runs = [r.run_id for r in await tx.runs.active() if r.channel == channel]
        requeued = await tx.outbox.requeue_refused(channel, run_ids=runs, codes=ABSENT, now=deps.clock.now())
    for run in runs:
        deps.on_change(run)
    return requeued
