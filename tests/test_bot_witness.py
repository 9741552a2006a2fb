"""The served bot keeps the ledger's witness in Slack: chain heads as message metadata, in the
thread of the run's plan summary, at most one per 10 s of activity and always the final one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from packets.witness import EVENT_TYPE, WitnessedHead, from_message, witness_problem
from tests.bot_harness import BRIDGE, BotHarness, bot_world, serving

ENG1, REL1, RISK1 = "U0ENG1", "U0REL1", "U0RISK1"


@pytest.fixture
async def bot_harness(tmp_path: Path, database_url: str) -> AsyncIterator[BotHarness]:
    """On SQLite and on PostgreSQL (tests/conftest.py: skipped without TEST_DATABASE_URL)."""
    async with bot_world(tmp_path, database_url) as factory, serving(factory) as harness:
        yield harness


async def _say(h: BotHarness, user: str, text: str) -> None:
    reply = await h.command(text, user=user)
    assert reply.ok, (text, reply.text)
    await h.drain()


def _witnessed(h: BotHarness) -> list[tuple[WitnessedHead, str | None]]:
    """Each head the bot posted to the war room, with the thread it went in."""
    found = []
    for call in h.slack.calls("chat.postMessage"):
        head = from_message(call.body)
        if head is not None and call.ok:
            found.append((head, call.body.get("thread_ts")))
    return found


async def test_heads_go_in_the_plan_summarys_thread_one_per_ten_seconds_and_the_last_at_the_end(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    await _say(h, ENG1, "open bridge")
    run = await h.run_in(BRIDGE)
    await _say(h, REL1, "signoff")  # a head
    await _say(h, RISK1, "signoff")  # the same second: no second head yet
    assert len(_witnessed(h)) == 1
    h.clock.advance(timedelta(minutes=5))
    await _say(h, ENG1, "start")
    await _say(h, REL1, "abort the change window was cancelled")  # ended: posted whatever the gap

    witnessed = _witnessed(h)
    (summary,) = [row for row in await h.outbox_rows(run) if row.dedupe_key == "plan"]
    assert len(witnessed) == 3
    assert {thread for _, thread in witnessed} == {summary.slack_ts}
    async with h.bot.uow.transaction(read_only=True) as tx:
        head = await tx.ledger.head(run)
        hashes = await tx.ledger.hashes(run)
    assert head is not None
    assert witnessed[-1][0] == WitnessedHead(run, head.seq, head.hash)
    assert [witness_problem(w, hashes) for w, _ in witnessed] == [None, None, None]
    assert [w.seq for w, _ in witnessed] == sorted({w.seq for w, _ in witnessed})
    # Slack keeps the head as the message's metadata, which `ledger witness` reads back.
    kept = [p for p in h.slack.messages(BRIDGE) if p.metadata and p.metadata["event_type"] == EVENT_TYPE]
    assert [from_message({"metadata": p.metadata}) for p in kept] == [w for w, _ in witnessed]
