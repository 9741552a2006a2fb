"""The record the morning after: `/cutover evidence` and `/cutover ledger` answer for a run that
has ended (its channel's latest, or one named), and refuse a run of another channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.command_text import Usage, parse
from bot.intents import PlanSource, run_text
from bot.wiring import Bot
from handlers.outcome import Outcome
from tests.bot_harness import BRIDGE, BotFactory, bot_world

ENG1, REL1, RISK1 = "U0ENG1", "U0REL1", "U0RISK1"
ELSEWHERE = "C0ELSEWHERE"


@pytest.fixture
async def world(tmp_path: Path, database_url: str) -> AsyncIterator[BotFactory]:
    async with bot_world(tmp_path, database_url) as factory:
        yield factory


async def _say(bot: Bot, user: str, channel: str, text: str) -> Outcome:
    return await run_text(
        parse(text), user=user, channel=channel, deps=bot.deps, plans=PlanSource(bot.plans_dir)
    )


async def _ended_run(bot: Bot) -> str:
    for user, text in [(ENG1, "open bridge"), (REL1, "signoff"), (RISK1, "signoff"), (REL1, "start")]:
        outcome = await _say(bot, user, BRIDGE, text)
        assert outcome.ok, (text, outcome.message)
    aborted = await _say(bot, REL1, BRIDGE, "abort the vault vendor called a halt")
    assert aborted.ok, aborted.message
    async with bot.uow.transaction(read_only=True) as tx:
        row = await tx.runs.newest_in_channel(BRIDGE)
    assert row is not None and row.state == "aborted"
    return row.run_id


async def test_after_a_run_ends_its_channel_still_gets_its_evidence_and_ledger(world: BotFactory) -> None:
    bot = await world.build()
    run = await _ended_run(bot)

    evidence = await _say(bot, ENG1, BRIDGE, "evidence")
    ledger = await _say(bot, ENG1, BRIDGE, "ledger 3")

    assert evidence.ok and evidence.run == run, evidence.message
    assert "aborted" in evidence.message and "verified" in evidence.message
    assert ledger.ok and ledger.run == run
    lines = ledger.message.splitlines()
    assert len(lines) == 3 and "run aborted" in ledger.message, ledger.message
    assert "-05:00" in lines[0], "the ledger tells time in the plan's offset"
    # Other commands still need a run under way.
    status = await _say(bot, ENG1, BRIDGE, "status")
    assert not status.ok and "No active cutover run" in status.message


async def test_a_run_named_outright_is_read_in_its_own_channel_only(world: BotFactory) -> None:
    bot = await world.build()
    run = await _ended_run(bot)

    named = await _say(bot, ENG1, BRIDGE, f"ledger {run} 2")
    assert named.ok and len(named.message.splitlines()) == 2
    assert (await _say(bot, ENG1, BRIDGE, f"evidence {run}")).ok

    elsewhere = await _say(bot, ENG1, ELSEWHERE, f"evidence {run}")
    unknown = await _say(bot, ENG1, BRIDGE, "ledger no-such-run")
    assert not elsewhere.ok and f"No run '{run}' in this channel." == elsewhere.message
    assert not unknown.ok and unknown.message == "No run 'no-such-run' in this channel."
    empty = await _say(bot, ENG1, ELSEWHERE, "ledger")
    assert not empty.ok and "No cutover run in this channel yet" in empty.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ledger", (None, 10)),
        ("ledger 5", (None, 5)),
        ("ledger bridge-20261124-210000", ("bridge-20261124-210000", 10)),
        ("ledger bridge-20261124-210000 7", ("bridge-20261124-210000", 7)),
    ],
)
def test_ledger_takes_an_optional_run_then_an_optional_count(
    text: str, expected: tuple[str | None, int]
) -> None:
    parsed = parse(text)
    assert (parsed.run, parsed.count) == expected


@pytest.mark.parametrize("text", ["ledger run 0", "ledger run 5 6", "ledger Bad*Run", "evidence a b"])
def test_a_malformed_evidence_or_ledger_line_gets_usage_help(text: str) -> None:
    with pytest.raises(Usage):
        parse(text)
