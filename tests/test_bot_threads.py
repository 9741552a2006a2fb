"""One thread per run: the plan summary is the run's parent message in the war room; everything
else goes in its thread, and only what needs the room is also shown in the channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.bot_harness import BRIDGE, BotHarness, bot_world, serving
from tests.slack_standin import Posted

ENG1, REL1, RISK1 = "U0ENG1", "U0REL1", "U0RISK1"


@pytest.fixture
async def bot_harness(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[BotHarness]:
    async with bot_world(tmp_path, sqlite_template) as factory, serving(factory) as harness:
        yield harness


async def _say(h: BotHarness, user: str, text: str) -> None:
    reply = await h.command(text, user=user)
    assert reply.ok, (text, reply.text)
    await h.drain()


def _shown(messages: list[Posted], words: str) -> list[Posted]:
    return [m for m in messages if words in m.text]


async def test_the_run_lives_in_one_thread_and_the_room_sees_only_what_needs_it(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    await _say(h, ENG1, "open bridge")
    run = await h.run_in(BRIDGE)
    await _say(h, REL1, "signoff")
    await _say(h, RISK1, "signoff")
    h.clock.advance(timedelta(minutes=5))
    await _say(h, ENG1, "start")
    await _say(h, ENG1, "late drain-queue +25m pumps are slow")
    await _say(h, REL1, "adopt")
    await _say(h, ENG1, "hold waiting for the bridge vendor")
    await _say(h, ENG1, "freeze vendor incident")
    await _say(h, ENG1, "unfreeze")
    await _say(h, REL1, "abort the change window was cancelled")

    (summary_row,) = [row for row in await h.outbox_rows(run) if row.dedupe_key == "plan"]
    messages = h.slack.messages(BRIDGE)
    (summary,) = [m for m in messages if m.ts == summary_row.slack_ts]
    assert summary.thread_ts is None
    others = [m for m in messages if m.ts != summary.ts]
    assert others and {m.thread_ts for m in others} == {summary.ts}  # every other message: its thread
    in_the_room = {m.text for m in others if m.broadcast}
    # The proposal (answered in place once adopted) asked the room.
    assert _shown(others, "v2 adopted") and all(m.broadcast for m in _shown(others, "v2 adopted"))
    assert any("hold" in text.lower() for text in in_the_room), in_the_room
    assert any("frozen" in text for text in in_the_room), in_the_room
    assert any("aborted" in text for text in in_the_room), in_the_room
    quiet = [m for m in others if not m.broadcast]
    assert any("signed off" in m.text for m in quiet)  # sign-offs stay in the thread
    assert any("unfrozen" in m.text for m in quiet) and any("Ledger of run" in m.text for m in quiet)
    assert len(in_the_room) < len(others) / 2, (len(in_the_room), len(others))


async def test_a_run_whose_summary_was_never_posted_still_reaches_the_channel(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    h.slack.error_next("chat.postMessage", "not_in_channel", channel=BRIDGE)  # the summary fails
    await _say(h, ENG1, "open bridge")
    await _say(h, REL1, "signoff")

    messages = h.slack.messages(BRIDGE)
    assert messages and all(m.thread_ts is None for m in messages)
    assert any("signed off" in m.text for m in messages)
