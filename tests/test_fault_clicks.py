"""A hundred people-clicks on one Release button at once, against the real bot over HTTP.

The bot is built by `bot.wiring` and served on 127.0.0.1 (tests/bot_harness.py); each click is
a `block_actions` request signed exactly as Slack signs it, carrying the Release button's value
as the bot rendered it for the current packet version, and its own `response_url` on the Slack
stand-in. All hundred are sent at once. Slack gives an app 3 seconds to answer an interaction,
so every request must get its HTTP 200 before its use case runs (checked by holding the database
while the clicks arrive, not with a stopwatch); then exactly one click releases the
hold (the engine records one release, the ledger one `hold_released`, the traffic moves once)
and the other 99 people are told, on their own response_url, that it was already released, by
whom, as which role, and when.

Two shapes of the race:

- a manual hold clicked a hundred times by the same authorized person (the release authority);
- a plan hold releasable by either of two roles (mode `any`: release-authority or release-eng),
  clicked fifty times each by the two people acting for those roles, interleaved. (Several
  distinct people acting for one role at once is not possible: a role has one acting user.)
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.ids import ActionId
from handlers import shifts
from packets.engine.progress import RunProgress
from tests import signing
from tests.bot_harness import BRIDGE_PLAN, SECRET, BotHarness, bot_world, serving, wait_until

REL1, ENG1, RISK1, SEC1, DBA1 = "U0REL1", "U0ENG1", "U0RISK1", "U0SEC1", "U0DBA1"
CLICKS = 100
CHANNEL = "C0CLICKS"

# The bridge plan in its own channel, with the go-decision hold releasable by either of two roles.
CLICKS_PLAN = (
    BRIDGE_PLAN.replace("plan: bridge", "plan: clicks")
    .replace("channel: C0BRIDGE", f"channel: {CHANNEL}")
    .replace(
        "hold: {release_by: [release-authority]}",
        "hold: {release_by: [release-authority, release-eng], mode: any}",
    )
)


@pytest.fixture
async def bot_harness(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[BotHarness]:
    async with bot_world(tmp_path, sqlite_template) as factory:
        plans = Path(factory.settings.cutover_plans_dir)
        (plans / "clicks.yaml").write_text(CLICKS_PLAN, encoding="utf-8")
        async with serving(factory) as harness:
            yield harness


async def _started(h: BotHarness, plan: str, channel: str) -> str:
    for user, text in [(ENG1, f"open {plan}"), (REL1, "signoff"), (RISK1, "signoff")]:
        reply = await h.command(text, user=user, channel=channel)
        assert reply.ok, (text, reply.text)
    h.clock.advance(timedelta(minutes=5))
    reply = await h.command("start", user=ENG1, channel=channel)
    assert reply.ok, reply.text
    return await h.run_in(channel)


async def _hold_state(h: BotHarness, run: str, hold: str) -> Any:
    async with h.bot.uow.transaction(read_only=True) as tx:
        row = await tx.runs.get(run)
    assert row is not None
    return RunProgress.from_json(row.progress["engine"]).holds[hold]


async def _click_all_at_once(
    h: BotHarness, value: str, users: list[str], channel: str
) -> list[tuple[str, str, int, float]]:
    """Every click signed first, then all sent at once: (user, response id, HTTP status, seconds)."""
    signed = []
    for n, user in enumerate(users):
        rid = f"click-{n}"
        signed.append(
            (
                user,
                rid,
                signing.signed_block_actions(
                    secret=SECRET,
                    action_id=ActionId.RELEASE_HOLD.value,
                    value=value,
                    user_id=user,
                    username=user.lower(),
                    channel_id=channel,
                    response_url=h.slack.response_url(rid),
                    trigger_id=f"1337.{n}.clicks",
                    action_ts=f"{time.time():.6f}",
                ),
            )
        )

    async def one(user: str, rid: str, request: signing.SignedRequest) -> tuple[str, str, int, float]:
        began = time.monotonic()
        status, _ack = await h.post(request.body, request.headers)
        return user, rid, status, time.monotonic() - began

    return list(await asyncio.gather(*(one(*s) for s in signed)))


async def _the_race(
    h: BotHarness, *, run: str, channel: str, hold: str, value: str, users: list[str]
) -> dict[str, Any]:
    """Run the hundred clicks and check everything a race could break; returns what was seen."""
    ledger_before = await h.ledger_kinds(run)
    shifts_before = len(h.actuator.shifts)

    # Every click is acked (200) once it is written to the inbox (bot/intake.py): a click cannot
    # be durable while the database's write lock is held, so the test no longer holds it; the
    # hundred clicks still race each other for the one release.
    clicks = await _click_all_at_once(h, value, users, channel)
    assert [status for *_, status, _ in clicks] == [200] * CLICKS
    await wait_until(
        lambda: all(h.slack.responses(rid) for _, rid, _, _ in clicks),
        what="an answer to every click",
        timeout=60,
    )
    answers = {rid: h.slack.responses(rid) for _, rid, _, _ in clicks}
    assert all(len(posts) == 1 for posts in answers.values()), "a click was answered twice"
    by_rid = {rid: user for user, rid, _, _ in clicks}
    texts = {rid: posts[0]["text"] for rid, posts in answers.items()}
    assert all(posts[0]["response_type"] == "ephemeral" for posts in answers.values())
    assert not any("Traceback" in text for text in texts.values())

    # Exactly one release, answered as such to the one who won.
    won = [rid for rid, text in texts.items() if not text.startswith(":no_entry:")]
    assert len(won) == 1, [texts[rid] for rid in won]
    (winner_rid,) = won
    winner = by_rid[winner_rid]
    assert texts[winner_rid].startswith(f"Released {hold} as "), texts[winner_rid]
    role = texts[winner_rid].removeprefix(f"Released {hold} as ").split(";")[0]

    # The 99 others: who released it, as which role, and when.
    already = re.compile(
        rf"^:no_entry: Hold {re.escape(hold)} was already released by {winner} as {re.escape(role)} "
        r"at 20\d\d-\d\d-\d\dT\d\d:\d\d[+-]\d\d:\d\d\. \(current packet: v1\)$"
    )
    odd = {rid: text for rid, text in texts.items() if rid != winner_rid and not already.match(text)}
    assert odd == {}, odd

    # One release in the engine, in the ledger, in the room and on the traffic.
    record = await _hold_state(h, run, hold)
    assert not record.is_open
    assert [(r.user, r.role) for r in record.releases] == [(winner, role)]
    ledger_after = await h.ledger_kinds(run)
    added = Counter(ledger_after[len(ledger_before) :])
    assert added["hold_released"] == 1 and ledger_after.count("hold_released") == 1, added
    assert added["refused"] == CLICKS - 1, added
    notices = [r for r in await h.outbox_rows(run) if r.kind == "hold_released"]
    assert len(notices) == 1, notices
    return {"winner": winner, "role": role, "shifts": h.actuator.shifts[shifts_before:], "clicks": clicks}


async def test_a_hundred_concurrent_clicks_by_the_release_authority_release_a_manual_hold_exactly_once(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    channel = "C0BRIDGE"
    run = await _started(h, "bridge", channel)
    assert (await h.command("hold bridge vendor paged", user=SEC1, channel=channel)).ok
    await h.drain()
    (value,) = h.buttons(channel, ActionId.RELEASE_HOLD, on="Hold ")
    rendered = json.loads(value)
    assert "v" not in rendered  # bound to the hold: an adoption does not make it stale
    hold = rendered["hold"]

    seen = await _the_race(h, run=run, channel=channel, hold=hold, value=value, users=[REL1] * CLICKS)

    assert (seen["winner"], seen["role"]) == (REL1, "release-authority")
    status = await h.command("status", user=ENG1, channel=channel)
    assert "is *running*" in status.text, status.text


async def test_a_hundred_concurrent_clicks_by_both_roles_of_an_any_hold_release_it_once_and_shift_once(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    run = await _started(h, "clicks", CHANNEL)
    assert (await h.command("done drain-queue", user=ENG1, channel=CHANNEL)).ok
    assert (await h.command("done schema-check", user=DBA1, channel=CHANNEL)).ok
    await h.drain()
    (value,) = h.buttons(CHANNEL, ActionId.RELEASE_HOLD, on="Hold ")
    hold = json.loads(value)["hold"]
    assert hold.startswith("go-decision/plan/")
    record = await _hold_state(h, run, hold)
    assert (set(record.release_by), record.mode) == ({"release-authority", "release-eng"}, "any")

    users = [REL1 if n % 2 == 0 else ENG1 for n in range(CLICKS)]
    seen = await _the_race(h, run=run, channel=CHANNEL, hold=hold, value=value, users=users)

    expected_role = {REL1: "release-authority", ENG1: "release-eng"}[seen["winner"]]
    assert seen["role"] == expected_role
    # Releasing go-decision lets the canary start: its gates are read for the shift (check before
    # moving, at the next gate tick), then its traffic moves once, not once per click.
    assert seen["shifts"] == []
    before = len(h.actuator.shifts)
    await h.bot.scheduler.tick(run)
    await shifts.drain(h.bot.deps)
    moved = h.actuator.shifts[before:]
    assert [(s.checkpoint, s.cohort, s.percent) for s in moved] == [("canary", "orders", 5)]
