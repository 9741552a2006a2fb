"""The whole bot over HTTP: signed Slack requests in, Web API calls to the stand-in out.

Built by `bot.wiring.build` exactly as `cutover-bot serve` builds it (tests/bot_harness.py), with
a simulated clock, the log actuator and the plan's simulated telemetry. Every answer to a person
is checked where Slack would show it (the request's response_url, or the HTTP ack), every message
to the room where the stand-in received it. The outbox is drained by the test, never by a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from bot import metrics
from bot.cli import main
from bot.command_text import USAGE
from bot.ids import ActionId
from bot.server import build_web_app
from handlers import shifts
from tests import signing
from tests.bot_harness import (
    BRIDGE,
    REPO,
    SECRET,
    BotHarness,
    bot_world,
    buttons_of,
    serving,
    wait_until,
    write_plans,
)
from tests.slack_standin import Call

ENG1, ENG2, REL1, REL2 = "U0ENG1", "U0ENG2", "U0REL1", "U0REL2"
RISK1, SEC1, SEC2, DBA1 = "U0RISK1", "U0SEC1", "U0SEC2", "U0DBA1"


@pytest.fixture
async def bot_harness(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[BotHarness]:
    async with bot_world(tmp_path, sqlite_template) as factory, serving(factory) as harness:
        yield harness


async def _opened(h: BotHarness) -> str:
    reply = await h.command("open bridge", user=ENG1)
    assert reply.ok, reply.text
    return await h.run_in(BRIDGE)


async def _signed_off(h: BotHarness) -> str:
    run = await _opened(h)
    for user in (REL1, RISK1):
        reply = await h.command("signoff", user=user)
        assert reply.ok, reply.text
    return run


async def _started(h: BotHarness) -> str:
    run = await _signed_off(h)
    h.clock.advance(timedelta(minutes=5))  # the window opens at 21:00
    reply = await h.command("start", user=ENG1)
    assert reply.ok and "running" in reply.text, reply.text
    return run


async def _proposed(h: BotHarness, until: str = "+25m") -> str:
    run = await _started(h)
    reply = await h.command(f"late drain-queue {until} pumps are slow", user=ENG1)
    assert reply.ok and "v2 proposed" in reply.text, reply.text
    return run


def _ok_posts(h: BotHarness) -> list[Call]:
    return [c for c in h.slack.calls("chat.postMessage") if c.ok]


def _web_api_calls(h: BotHarness) -> list[Call]:
    """What the bot asked of Slack, without Bolt's one auth.test on the first request."""
    return [c for c in h.slack.calls() if c.method != "auth.test"]


def _dm_recipients(h: BotHarness) -> list[str]:
    return sorted(c.body["channel"] for c in _ok_posts(h) if str(c.body["channel"]).startswith("U"))


# -- every subcommand ---------------------------------------------------------------------------

# (who types it, what, a fragment of the ephemeral answer): in this order, a whole small cutover.
WALKTHROUGH: list[tuple[str, str, str]] = [
    (ENG1, "help", "/cutover late CHECKPOINT UNTIL"),
    (ENG1, "status", "No active cutover run in this channel"),
    (ENG1, "open bridge", "Opened run bridge-"),
    (ENG1, "status", "is *awaiting sign-off*, following packet v1"),
    (ENG1, "packet", "*Packet v1* (authoritative)"),
    (REL1, "signoff", "as release-authority; still waiting for payments-risk"),
    (RISK1, "signoff release-authority", "may not sign off as release-authority: U0REL1 acts for it"),
    (RISK1, "signoff payments-risk", "every sign-off is in"),
    (ENG1, "start", "Started; the run is running"),
    (ENG1, "late drain-queue +25m pumps are slow", "v2 proposed: 3 checkpoints moved"),
    (REL1, "reject v2 not convinced", "v2 rejected: #1 dropped; v1 stays current"),
    (ENG1, "late drain-queue +30m still pumping", "v3 proposed"),
    (REL1, "adopt", "v3 is authoritative"),
    (SEC1, "ack", "Acknowledged v3"),
    (REL1, "window go-decision 21:45-22:15", "v4 proposed"),
    (ENG1, "done drain-queue", "drain-queue done at 21:00"),
    (ENG1, "hold waiting for the bridge vendor", "/manual/"),
    (ENG1, "release schema-check", "Released schema-check/manual/"),
    (ENG1, "unrelease schema-check", "was already released by U0ENG1"),
    (ENG1, "pause a breather", "Paused; the run is paused"),
    (ENG1, "resume", "Resumed; the run is running"),
    (REL1, "delegate release-authority @U0REL2", "U0REL2 will act for release-authority once v6 is adopted"),
    (ENG1, "freeze vendor incident", "Frozen; the run is frozen"),
    (ENG1, "unfreeze", "Unfrozen; the run is running"),
    (ENG1, "evidence", "ledger verified"),
    (ENG1, "manifest", "has no bundle section"),
    (ENG1, "ledger 3", "U0ENG1: run unfrozen"),
    (ENG1, "supersede bridge token-service rebuilt", "is the revision this run already runs"),
    (SEC1, "abort change window cancelled", "may not abort the run"),
    (REL1, "restore merchant-a", "only while the run is held or in hyper-care"),
    (ENG1, "rollback all error budget gone", "Rollback asked in the war room"),
]


async def test_every_subcommand_reaches_its_use_case_and_answers_only_the_person_who_typed_it(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    seen: list[str] = []
    for user, text, expected in WALKTHROUGH:
        if text == "start":
            h.clock.advance(timedelta(minutes=5))
        reply = await h.command(text, user=user)
        assert reply.status == 200 and reply.ack == "", (text, reply.ack)
        (answer,) = reply.replies
        assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False, text
        assert expected in answer["text"], (text, answer["text"])
        seen.append(text.split()[0])
    run = await h.run_in(BRIDGE)

    # The typed rollback only asks the room; the confirm button names the run and the request.
    assert "global_rollback" not in await h.ledger_kinds(run)
    await h.drain()
    (question,) = h.posted(BRIDGE, on="Roll back ALL traffic back to legacy?")
    (confirm,) = buttons_of(question.blocks)
    assert confirm["action_id"] == ActionId.CONFIRM_ROLLBACK
    value = json.loads(confirm["value"])
    assert {k: value[k] for k in ("run", "rb")} == {"run": run, "rb": "rb-1"}
    assert isinstance(value["v"], int)  # rendered for the current packet version
    clicked = await h.click_on(question, ActionId.CONFIRM_ROLLBACK, user=ENG1)
    assert clicked.ok and "Rolled back everything" in clicked.text, clicked.text

    assert set(USAGE) <= set(seen)  # every subcommand was typed
    report = await h.drain()
    assert report.failed == 0 and report.retried == 0
    texts = [c.body["text"] for c in _ok_posts(h) if c.body["channel"] == BRIDGE]
    assert any("Evidence packet" in t for t in texts), texts


async def test_a_malformed_subcommand_is_answered_in_the_ack_with_its_usage_line_and_nothing_happens(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    for text, expected in [
        ("late drain-queue", "Usage: /cutover late CHECKPOINT UNTIL [reason]"),
        ("late drain-queue tomorrow", "UNTIL must be HH:MM or +30m"),
        ("window drain-queue 25:00-26:00", "Usage: /cutover window CHECKPOINT HH:MM-HH:MM"),
        ("frobnicate now", "Unknown subcommand 'frobnicate'. Try /cutover help"),
        ("delegate release-authority nobody", "is not a user mention"),
    ]:
        reply = await h.command(text, user=ENG1, wait=False)
        assert reply.status == 200, text
        assert reply.ack == {"response_type": "ephemeral", "text": reply.ack["text"]}, text
        assert expected in reply.ack["text"], (text, reply.ack["text"])
        assert "Traceback" not in reply.ack["text"]
    assert h.slack.responses() == [] and _web_api_calls(h) == []


async def test_a_command_whose_text_says_payload_is_still_a_command(bot_harness: BotHarness) -> None:
    # Bolt alone would take any form body containing "payload" for an interaction and drop it.
    h = bot_harness
    reply = await h.command("hold payload", user=ENG1)

    assert reply.status == 200
    (answer,) = reply.replies
    assert "No active cutover run" in answer["text"]


async def test_a_use_case_that_fails_on_the_bots_side_gets_a_plain_answer_and_no_traceback(
    bot_harness: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = bot_harness
    (h.bot.plans_dir / "garbled.yaml").write_bytes(b"plan: \xff\xfe not utf-8\n")

    reply = await h.command("open garbled", user=ENG1)

    assert reply.status == 200
    (answer,) = reply.replies
    assert "failed on the bot's side" in answer["text"] and "Traceback" not in answer["text"]
    assert any("a use case failed after the ack" in r.getMessage() for r in caplog.records)


# -- every button -------------------------------------------------------------------------------


async def test_every_button_the_bot_renders_reaches_its_use_case(bot_harness: BotHarness) -> None:
    h = bot_harness
    run = await _opened(h)
    await h.drain()

    # Sign off: one button per sign-off role on the plan summary.
    by_role = {json.loads(v)["role"]: v for v in h.buttons(BRIDGE, ActionId.SIGN_OFF)}
    assert set(by_role) == {"release-authority", "payments-risk"}
    reply = await h.click(ActionId.SIGN_OFF, by_role["release-authority"], user=REL1)
    assert reply.ok and "as release-authority" in reply.text, reply.text
    reply = await h.click(ActionId.SIGN_OFF, by_role["payments-risk"], user=RISK1)
    assert reply.ok and "every sign-off is in" in reply.text, reply.text
    h.clock.advance(timedelta(minutes=5))
    assert (await h.command("start", user=REL1)).ok

    # Reject, then adopt: the Adopt and Reject buttons of the proposal line.
    assert (await h.command("late drain-queue +25m slow", user=ENG1)).ok
    await h.drain()
    (reject,) = h.buttons(BRIDGE, ActionId.REJECT_PACKET, on="v2 proposed")
    reply = await h.click(ActionId.REJECT_PACKET, reject, user=REL1)
    assert reply.ok and "v2 rejected" in reply.text, reply.text
    assert (await h.command("late drain-queue +30m slower", user=ENG1)).ok
    await h.drain()
    (adopt,) = h.buttons(BRIDGE, ActionId.ADOPT_PACKET, on="v3 proposed")
    assert json.loads(adopt) == {"run": run, "v": 3}
    reply = await h.click(ActionId.ADOPT_PACKET, adopt, user=REL1)
    assert reply.ok and "v3 is authoritative" in reply.text, reply.text

    # Acknowledge: from the delta DM the observer received.
    await h.drain()
    (ack,) = h.buttons("D0SEC1", ActionId.ACKNOWLEDGE_PACKET)
    reply = await h.click(ActionId.ACKNOWLEDGE_PACKET, ack, user=SEC1, channel="D0SEC1")
    assert reply.ok and reply.text == "Acknowledged v3.", reply.text

    # Release: the button on the hold's message.
    assert (await h.command("hold bridge vendor paged", user=SEC1)).ok
    await h.drain()
    (release,) = h.buttons(BRIDGE, ActionId.RELEASE_HOLD, on="Hold ")
    reply = await h.click(ActionId.RELEASE_HOLD, release, user=ENG1)
    assert reply.ok and "as release-eng; the run is running" in reply.text, reply.text

    # Confirm rollback: the button of the question the typed rollback asked the room.
    assert (await h.command("rollback all error rate", user=ENG1)).ok
    await h.drain()
    (question,) = h.posted(BRIDGE, on="Roll back ALL")
    reply = await h.click_on(question, ActionId.CONFIRM_ROLLBACK, user=REL1)
    assert reply.ok and "Rolled back everything" in reply.text, reply.text

    kinds = await h.ledger_kinds(run)
    for kind in ("signoff", "packet_rejected", "packet_adopted", "acknowledged", "hold_released"):
        assert kind in kinds, (kind, kinds)


async def test_a_click_by_someone_who_does_not_hold_the_role_is_refused_naming_the_current_version(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    run = await _proposed(h)
    await h.drain()
    (adopt,) = h.buttons(BRIDGE, ActionId.ADOPT_PACKET, on="v2 proposed")
    before = await h.ledger_kinds(run)

    reply = await h.click(ActionId.ADOPT_PACKET, adopt, user=ENG1)

    assert reply.refused, reply.text
    assert "may not adopt packet v2: that takes release-authority (acting: U0REL1)" in reply.text
    assert "v1" in reply.text  # the version the room still follows
    after = await h.ledger_kinds(run)
    assert after == [*before, "refused"]
    async with h.bot.uow.transaction(read_only=True) as tx:
        proposal, row = await tx.packets.get(run, 2), await tx.runs.get(run)
    assert proposal is not None and proposal.state == "proposed"
    assert row is not None and row.authoritative_version == 1


async def test_a_click_on_a_superseded_version_is_refused_and_names_the_current_one(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    run = await _started(h)
    assert (await h.command("hold vendor on the phone", user=ENG1)).ok
    await h.drain()
    (on_hold,) = h.buttons(BRIDGE, ActionId.RELEASE_HOLD, on="Hold ")
    # A packet card's Release button is rendered for the card's version.
    card_v1 = json.dumps({**json.loads(on_hold), "v": 1})
    assert (await h.command("late drain-queue +25m slow", user=ENG1)).ok
    assert (await h.command("adopt v2", user=REL1)).ok

    stale_release = await h.click(ActionId.RELEASE_HOLD, card_v1, user=REL1)
    stale_ack = await h.click(ActionId.ACKNOWLEDGE_PACKET, {"run": run, "v": 1}, user=SEC1)

    assert stale_release.refused and "v1" in stale_release.text and "v2 is current" in stale_release.text
    assert "hold's own message" in stale_release.text
    assert stale_ack.refused and "v2 is" in stale_ack.text, stale_ack.text
    status = await h.command("status", user=ENG1)
    assert "is *held*" in status.text  # the hold is still open
    assert (await h.ledger_kinds(run))[-2:] == ["refused", "refused"]


async def test_a_holds_own_release_button_still_releases_it_after_an_adoption(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    run = await _started(h)
    assert (await h.command("hold vendor on the phone", user=ENG1)).ok
    await h.drain()
    (on_hold,) = h.buttons(BRIDGE, ActionId.RELEASE_HOLD, on="Hold ")
    assert "v" not in json.loads(on_hold)  # bound to the hold, not to a packet version
    assert (await h.command("late drain-queue +25m slow", user=ENG1)).ok
    assert (await h.command("adopt v2", user=REL1)).ok

    released = await h.click(ActionId.RELEASE_HOLD, on_hold, user=REL1)

    assert released.ok and "Released" in released.text, released.text
    assert "hold_released" in await h.ledger_kinds(run)
    again = await h.click(ActionId.RELEASE_HOLD, on_hold, user=REL1)
    assert again.refused, again.text


async def test_two_people_releasing_one_hold_at_once_get_one_release_and_one_already_released(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    run = await _started(h)
    assert (await h.command("hold bridge vendor paged", user=SEC1)).ok
    await h.drain()
    (release,) = h.buttons(BRIDGE, ActionId.RELEASE_HOLD, on="Hold ")
    hold = json.loads(release)["hold"]

    first, second = await asyncio.gather(
        h.click(ActionId.RELEASE_HOLD, release, user=REL1),
        h.click(ActionId.RELEASE_HOLD, release, user=ENG1),
    )

    winner, loser = (first, second) if first.ok else (second, first)
    assert winner.ok and f"Released {hold}" in winner.text, winner.text
    assert loser.refused, loser.text
    who = REL1 if winner is first else ENG1
    assert f"Hold {hold} was already released by {who} as " in loser.text
    assert " at 2026-11-2" in loser.text  # when
    kinds = await h.ledger_kinds(run)
    assert kinds.count("hold_released") == 1 and kinds[-1] == "refused"


async def test_a_delegate_switched_in_by_the_release_authority_may_then_release_the_hold(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    run = await _started(h)
    assert (await h.command("done drain-queue", user=ENG1)).ok
    assert (await h.command("done schema-check", user=DBA1)).ok
    await h.drain()
    (release,) = h.buttons(BRIDGE, ActionId.RELEASE_HOLD, on="Hold ")
    assert json.loads(release)["hold"].startswith("go-decision/")

    too_early = await h.click(ActionId.RELEASE_HOLD, release, user=REL2)
    assert too_early.refused and REL1 in too_early.text, too_early.text

    by_someone_else = await h.command("delegate release-authority @U0REL2", user=ENG1)
    assert by_someone_else.refused, by_someone_else.text
    switched = await h.command("delegate release-authority <@U0REL2|rel2>", user=REL1)
    assert switched.ok, switched.text
    # The switch changes owners, so it waits for its packet: until adopted, U0REL1 still acts.
    carrying = re.search(r"once (v\d+) is adopted", switched.text)
    assert carrying is not None, switched.text
    still_early = await h.click(ActionId.RELEASE_HOLD, release, user=REL2)
    assert still_early.refused and REL1 in still_early.text, still_early.text
    assert (await h.command(f"adopt {carrying.group(1)}", user=REL1)).ok
    await h.drain()

    # The v1 card was posted before the hold opened: it lists the hold without a button.
    assert h.buttons(BRIDGE, ActionId.RELEASE_HOLD, on="Packet v1") == []
    adopted_card = f"Packet {carrying.group(1)}"
    assert len(h.buttons(BRIDGE, ActionId.RELEASE_HOLD, on=adopted_card)) == 1  # open now: a button
    reply = await h.click(ActionId.RELEASE_HOLD, release, user=REL2)
    assert reply.ok and "Released go-decision/plan/" in reply.text and "as release-authority" in reply.text
    # Check before moving: the canary's gates are read for its shift (the next gate tick), then it goes out.
    await h.bot.scheduler.tick(run)
    await shifts.drain(h.bot.deps)
    assert [(s.checkpoint, s.cohort, s.percent) for s in h.actuator.shifts] == [("canary", "orders", 5)]
    kinds = await h.ledger_kinds(run)
    assert kinds.count("acting_changed") == 1 and "hold_released" in kinds


# -- what the room and the people see -----------------------------------------------------------


async def test_after_adoption_only_the_affected_principals_get_a_dm_with_their_changes(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    await _proposed(h)
    await h.drain()
    assert _dm_recipients(h) == []  # a proposal tells only the room

    assert (await h.command("adopt", user=REL1)).ok
    await h.drain()

    # drain-queue (release-eng, observed by security) moved, so did go-decision (release-authority)
    # and canary (release-eng); schema-check (dba, observed by payments-risk) did not move.
    assert _dm_recipients(h) == sorted([ENG1, REL1, SEC1])
    for user in (ENG1, REL1, SEC1):
        (dm,) = [c for c in _ok_posts(h) if c.body["channel"] == user]
        assert dm.body["text"].startswith("Packet v2 changes")
        (button,) = buttons_of(
            json.loads(dm.body["blocks"]) if isinstance(dm.body["blocks"], str) else dm.body["blocks"]
        )
        assert button["action_id"] == ActionId.ACKNOWLEDGE_PACKET and json.loads(button["value"])["v"] == 2


async def test_the_superseded_packet_is_updated_in_place_at_the_ts_slack_returned_for_it(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    run = await _proposed(h)
    await h.drain()
    (v1_post,) = [c for c in _ok_posts(h) if c.body["text"].startswith("Packet v1 (authoritative)")]
    v1_ts = v1_post.answer["ts"]
    async with h.bot.uow.transaction(read_only=True) as tx:
        v1 = await tx.packets.get(run, 1)
    assert v1 is not None and (v1.slack_channel, v1.slack_ts) == (BRIDGE, v1_ts)  # recorded when it was sent

    assert (await h.command("adopt", user=REL1)).ok
    await h.drain()

    # Updates of the v1 card (and of the answered proposal line, checked elsewhere).
    (update,) = [c for c in h.slack.calls("chat.update") if c.body["ts"] == v1_ts]
    assert update.ok and (update.body["channel"], update.body["ts"]) == (BRIDGE, v1_ts)
    message = h.slack.message(BRIDGE, v1_ts)
    assert message.text == "Packet v1 superseded by v2"
    assert buttons_of(message.blocks) == []
    v2_cards = [c for c in _ok_posts(h) if c.body["text"].startswith("Packet v2 (authoritative)")]
    assert len(v2_cards) == 1


async def test_a_superseded_version_that_was_never_posted_gets_no_new_message_in_the_room(
    bot_harness: BotHarness,
) -> None:
    # v1's card never reached Slack (refused for good); there is no stale message to fix, and the
    # v2 card already says what it supersedes, so the "v1 superseded" notice is dropped as failed.
    h = bot_harness
    run = await _proposed(h)
    async with h.bot.uow.transaction() as tx:
        (v1_card,) = [r for r in await tx.outbox.for_run(run) if r.kind == "packet_posted"]
        assert await tx.outbox.mark_failed(v1_card.id, error="chat.postMessage: not_in_channel")
    assert (await h.command("adopt", user=REL1)).ok

    report = await h.drain()

    assert [c for c in h.slack.calls("chat.update") if c.body["text"].startswith("Packet v1")] == []
    (notice,) = [r for r in await h.outbox_rows(run) if r.kind == "packet_superseded"]
    assert notice.state == "failed" and "target" in (notice.last_error or "")
    assert not [c for c in _ok_posts(h) if "superseded" in c.body["text"]]
    cards = [c for c in _ok_posts(h) if c.body["channel"] == BRIDGE and c.body["text"].startswith("Packet v")]
    assert [c.body["text"][:26] for c in cards] == ["Packet v2 (authoritative):"]
    assert report.failed == 1


async def test_opening_the_app_home_publishes_that_persons_view(bot_harness: BotHarness) -> None:
    h = bot_harness
    await _started(h)
    signed = signing.signed_app_home_opened(secret=SECRET, user=ENG1)

    status, _ack = await h.post(signed.body, signed.headers)

    assert status == 200
    await wait_until(lambda: bool(h.slack.views(ENG1)), what="views.publish")
    (view,) = h.slack.views(ENG1)
    assert view["type"] == "home"
    assert "Drain the order queue" in json.dumps(view)
    assert [c.body["user_id"] for c in h.slack.calls("views.publish")] == [ENG1]


# -- requests that are not Slack's --------------------------------------------------------------


async def _nothing_changed(h: BotHarness) -> None:
    async with h.bot.uow.transaction(read_only=True) as tx:
        assert await tx.runs.active() == []
    assert h.slack.responses() == [] and _web_api_calls(h) == []


@pytest.mark.parametrize(
    "tamper",
    ["unsigned", "wrong secret", "body changed after signing", "six minutes old", "signed in the future"],
)
async def test_a_request_slack_did_not_sign_just_now_gets_401_and_changes_nothing(
    bot_harness: BotHarness, tamper: str
) -> None:
    h = bot_harness
    body = signing.slash_command_body(
        text="open bridge", user_id=ENG1, channel_id=BRIDGE, response_url=h.slack.response_url("x")
    )
    form = "application/x-www-form-urlencoded"
    now = int(time.time())
    signed = {
        "unsigned": signing.SignedRequest(body, {"Content-Type": form}),
        "wrong secret": signing.sign(body, secret="not-the-secret", content_type=form),
        "body changed after signing": signing.SignedRequest(
            body.replace("open+bridge", "open+payments-tokenization"),
            signing.sign(body, secret=SECRET, content_type=form).headers,
        ),
        "six minutes old": signing.sign(body, secret=SECRET, content_type=form, timestamp=now - 360),
        "signed in the future": signing.sign(body, secret=SECRET, content_type=form, timestamp=now + 360),
    }[tamper]

    status, answer = await h.post(signed.body, signed.headers)

    assert status == 401 and answer == {"error": "invalid signature"}
    await asyncio.sleep(0)  # give a wrongly started listener its chance to show
    await _nothing_changed(h)


async def test_without_a_signing_secret_even_a_request_signed_with_the_empty_key_gets_401(
    bot_harness: BotHarness,
) -> None:
    # Socket Mode has no signing secret; its /slack/events must not accept an HMAC anyone can make.
    h = bot_harness
    runner = web.AppRunner(build_web_app(h.bot.bolt, signing_secret=""), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
        signed = signing.signed_slash_command(secret="", text="open bridge", channel_id=BRIDGE)
        async with h.http.post(url, data=signed.body, headers=signed.headers) as response:
            assert response.status == 401
    finally:
        await runner.cleanup()
    await _nothing_changed(h)


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        ("this is not a form", "application/x-www-form-urlencoded", "body is not form encoded"),
        ("payload=%7Bnot+json", "application/x-www-form-urlencoded", "payload is not JSON"),
        ("payload=%5B1%2C2%5D", "application/x-www-form-urlencoded", "payload is not a JSON object"),
        ("{nope", "application/json", "body is not JSON"),
    ],
)
async def test_a_signed_but_malformed_body_gets_400_and_changes_nothing(
    bot_harness: BotHarness, body: str, content_type: str, problem: str
) -> None:
    h = bot_harness
    signed = signing.sign(body, secret=SECRET, content_type=content_type)

    status, answer = await h.post(signed.body, signed.headers)

    assert (status, answer) == (400, {"error": problem})
    await _nothing_changed(h)


async def test_health_and_metrics_are_served_beside_the_events_endpoint(bot_harness: BotHarness) -> None:
    h = bot_harness
    base = h.url.removesuffix("/slack/events")
    await h.command("help", user=ENG1)
    async with h.http.get(f"{base}/healthz") as response:
        assert (response.status, await response.json()) == (200, {"ok": True})
    async with h.http.get(f"{base}/metrics") as response:
        text = await response.text()
    assert response.status == 200 and "cutover_slack_requests_total" in text


# -- the outbox when Slack struggles ------------------------------------------------------------


async def test_under_429_and_5xx_the_dispatcher_loses_nothing_and_sends_nothing_twice(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    run = await _proposed(h)
    assert (await h.command("adopt", user=REL1)).ok
    queued = await h.outbox_rows(run)
    retries_before = {reason: _retries(reason) for reason in ("429", "5xx")}
    h.slack.fail_next("chat.postMessage", status=503, times=2)
    h.slack.fail_next("chat.postMessage", status=429, headers={"Retry-After": "1"})
    h.slack.fail_next("chat.update", status=500)

    report = await h.drain()

    assert (report.sent, report.failed, report.retried) == (len(queued), 0, 0)
    rows = await h.outbox_rows(run)
    assert {r.state for r in rows} == {"sent"}
    delivered = [c for c in _web_api_calls(h) if c.ok]
    assert len(delivered) == len(queued)  # each row reached Slack exactly once
    keys = [_delivery(c) for c in delivered]
    assert len(set(keys)) == len(keys)
    statuses = [c.status for c in h.slack.calls()]
    assert statuses.count(503) == 2 and statuses.count(429) == 1 and statuses.count(500) == 1
    (limited,) = [c for c in h.slack.calls() if c.status == 429]
    (retried,) = [c for c in delivered if c.body == limited.body]
    assert retried.at - limited.at >= 0.95  # Retry-After: 1 honoured
    assert _retries("429") - retries_before["429"] == 1
    assert _retries("5xx") - retries_before["5xx"] == 3


def _retries(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value("cutover_outbox_retries_total", {"reason": reason})
    return value or 0.0


async def test_while_slack_is_down_messages_wait_and_all_go_once_it_is_back(bot_harness: BotHarness) -> None:
    h = bot_harness
    run = await _started(h)
    h.slack.down()

    report = await h.drain()

    assert report.sent == 0 and report.retried >= 1
    rows = await h.outbox_rows(run)
    assert {r.state for r in rows} == {"pending"} and all(r.last_error for r in rows)
    h.slack.up()
    assert (await h.drain()).sent == 0  # not due yet: the retry time has not come
    h.clock.advance(timedelta(minutes=10))
    report = await h.drain()
    assert report.sent == len(rows) and report.failed == 0
    delivered = [c for c in _web_api_calls(h) if c.ok]
    assert len(delivered) == len(rows)
    assert len({_delivery(c) for c in delivered}) == len(rows)


def _delivery(call: Any) -> tuple[Any, ...]:
    """Which outbox row a call to Slack delivered: posts and updates carry their row id as message
    metadata (two rows may carry the same text: two branches starting at once, two live cards)."""
    metadata = call.body.get("metadata")
    if metadata:
        payload = metadata if isinstance(metadata, dict) else json.loads(metadata)
        return ("post", payload["event_payload"]["outbox_id"])
    return ("update", call.body["channel"], call.body.get("ts"), call.body["text"])


# -- the command line ---------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "PORT"))}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env={**base, "PYTHONPATH": str(REPO), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (
            ["serve"],
            {"SLACK_SIGNING_SECRET": "", "SLACK_BOT_TOKEN": "xoxb-1-secret-token"},
            "SLACK_SIGNING_SECRET",
        ),
        (
            ["serve", "--port", "0"],
            {"SLACK_SIGNING_SECRET": "  ", "SLACK_BOT_TOKEN": ""},
            "SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN",
        ),
        (
            ["serve", "--socket-mode"],
            {"SLACK_BOT_TOKEN": "xoxb-1-secret-token", "SLACK_APP_TOKEN": ""},
            "SLACK_APP_TOKEN",
        ),
    ],
)
def test_serve_refuses_to_start_without_its_secrets_in_one_line_without_printing_any(
    tmp_path: Path, args: list[str], env: dict[str, str], named: str
) -> None:
    result = _cli(*args, env=env, cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert named in line and "Traceback" not in result.stderr
    assert "xoxb" not in result.stderr
    assert not (tmp_path / "cutover.db").exists()  # refused before touching anything


async def test_serve_answers_signed_requests_until_sigterm_then_exits_cleanly(tmp_path: Path) -> None:
    from store.db import current_revision, head_revision, make_engine
    from tests.prometheus_harness import free_port
    from tests.slack_standin import SlackStandin

    port = free_port()
    database = tmp_path / "fresh.db"  # does not exist yet: serve migrates it at start-up
    write_plans(tmp_path / "plans")
    async with SlackStandin() as slack:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "PORT"))},
            "PYTHONPATH": str(REPO),
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.base_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
            "CUTOVER_PLANS_DIR": str(tmp_path / "plans"),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "serve",
            "--port",
            str(port),
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with aiohttp.ClientSession() as http:
                base = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + 30
                while True:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(f"{base}/healthz") as response:
                            if response.status == 200:
                                break
                    assert process.returncode is None, await process.stderr.read()  # type: ignore[union-attr]
                    assert time.monotonic() < deadline, "serve did not come up"
                    await asyncio.sleep(0.05)
                signed = signing.signed_slash_command(
                    secret=SECRET,
                    text="open bridge",
                    channel_id=BRIDGE,
                    response_url=slack.response_url("serve"),
                )
                async with http.post(
                    f"{base}/slack/events", data=signed.body, headers=signed.headers
                ) as response:
                    assert response.status == 200
                await wait_until(lambda: bool(slack.responses("serve")), what="the answer to /cutover open")
                # No drain here: the outbox loop, woken by the change, posts the plan and packet v1.
                await wait_until(lambda: len(slack.posted_to(BRIDGE)) >= 2, what="the outbox loop")
                assert len(slack.posted_to(BRIDGE)) == 2  # the plan and packet v1, nothing more
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            try:
                _out, err = await asyncio.wait_for(process.communicate(), timeout=30)
            except TimeoutError:
                process.kill()  # never leave a server behind
                raise

    assert process.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
    assert slack.responses("serve")[0]["text"].startswith("Opened run bridge-")
    engine = make_engine(f"sqlite+aiosqlite:///{database}")
    try:
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_evidence_prints_the_runs_evidence_as_markdown_or_json(
    bot_harness: BotHarness, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    h = bot_harness
    run = await _started(h)
    url = h.bot.settings.database_url

    async def cli(*args: str) -> tuple[int, str, str]:
        # In this process (a thread: the CLI runs its own event loop), so no interpreter start-up.
        status = await asyncio.to_thread(main, list(args))
        out, err = capsys.readouterr()
        return status, out, err

    markdown = await cli("evidence", run, "--database-url", url)
    monkeypatch.setenv("DATABASE_URL", url)
    as_json = await cli("evidence", run, "--format", "json")
    unknown = await cli("evidence", "no-such-run")
    record = await cli("evidence", run, "--format", "cdr")

    status, out, err = markdown
    assert status == 0, err
    assert out.startswith("# Evidence: Order writes move to the new bridge")
    assert f"- Run: `{run}`" in out and "verified" in out
    status, out, err = as_json
    assert status == 0, err
    evidence: dict[str, Any] = json.loads(out)
    assert evidence["run"] == run and evidence["final_state"] == "running"
    assert [s["role"] for s in evidence["signoffs"]] == ["release-authority", "payments-risk"]
    assert evidence["ledger"]["verified"] is True
    assert unknown == (1, "", "there is no run 'no-such-run'\n")
    status, out, err = record
    assert status == 0, err
    assert out.startswith("# Cutover decision record: Order writes move to the new bridge")
    sections = [line for line in out.splitlines() if line.startswith("## ")]
    assert sections == [
        "## Context",
        "## Scope",
        "## Evidence",
        "## Decision",
        "## Constraints",
        "## Rollback criteria",
        "## Consequences",
    ]
    assert "When this record was made, the run was still running." in out
    assert "- release-authority signed off: U0REL1 at 2026-11-24T" in out


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "view_submission", "team": {"id": "T0"}, "user": {"id": ENG1}},
        {"type": "view_submission", "team": {"id": "T0"}, "user": {"id": ENG1}, "view": {"id": "V1"}},
        {"type": "view_submission", "user": {"id": ENG1}, "view": "not a view"},
        {"type": "view_closed", "user": {"id": ENG1}},
        {"type": "view_closed", "user": {"id": ENG1}, "view": {"callback_id": 5}},
        {"type": "shortcut", "user": {"id": ENG1}},
        {"type": "message_action", "user": {"id": ENG1}, "channel": {"id": BRIDGE}},
        {"type": "block_suggestion", "user": {"id": ENG1}},
        {"type": "block_actions", "user": {"id": ENG1}},
        {"type": "block_actions", "user": {"id": ENG1}, "actions": "none"},
        {"type": "block_actions", "user": "U0ENG1", "actions": [{"action_id": "release_hold"}]},
        {"type": "interactive_message", "user": {"id": ENG1}},
        {"user": {"id": ENG1}},
    ],
    ids=lambda payload: str(payload.get("type", "no type")),
)
async def test_a_signed_payload_of_any_kind_with_missing_parts_gets_400_and_changes_nothing(
    bot_harness: BotHarness, payload: dict[str, Any]
) -> None:
    h = bot_harness
    body = "payload=" + quote(json.dumps(payload))
    signed = signing.sign(body, secret=SECRET, content_type="application/x-www-form-urlencoded")

    status, answer = await h.post(signed.body, signed.headers)

    assert status == 400 and set(answer) == {"error"}, (status, answer)
    await _nothing_changed(h)


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "view_submission", "user": {"id": ENG1}, "view": {"type": "modal", "callback_id": "x"}},
        {"type": "view_closed", "user": {"id": ENG1}, "view": {"type": "modal", "callback_id": "x"}},
        {"type": "shortcut", "user": {"id": ENG1}, "callback_id": "x", "trigger_id": "1.2.3"},
        {"type": "block_suggestion", "user": {"id": ENG1}, "action_id": "x", "value": "a"},
        {"type": "something_new", "user": {"id": ENG1}},
    ],
    ids=lambda payload: str(payload["type"]),
)
async def test_a_well_formed_interaction_the_bot_does_not_offer_is_acknowledged_and_ignored(
    bot_harness: BotHarness, payload: dict[str, Any]
) -> None:
    h = bot_harness
    body = "payload=" + quote(json.dumps(payload))
    signed = signing.sign(body, secret=SECRET, content_type="application/x-www-form-urlencoded")

    status, answer = await h.post(signed.body, signed.headers)

    assert (status, answer) == (200, {})
    await _nothing_changed(h)


async def test_a_card_number_typed_in_a_reason_reaches_neither_slack_nor_the_ledger_nor_the_outbox(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    run = await _started(h)
    card = "4242424242424242"

    held = await h.command(f"hold refund to card {card} is stuck", user=ENG1)
    rollback = await h.command(f"rollback cohort customer card {card} charged twice", user=ENG1)
    await h.drain()

    assert held.ok, held.text
    assert card not in held.text and card not in rollback.text
    assert "****4242" in held.text
    sent = json.dumps([c.body for c in h.slack.calls()]) + json.dumps(h.slack.responses())
    assert card not in sent and "****4242" in sent
    async with h.bot.uow.transaction(read_only=True) as tx:
        ledger = json.dumps([e.payload for e in await tx.ledger.entries(run)], default=str)
    outbox = json.dumps([r.payload for r in await h.outbox_rows(run)], default=str)
    assert card not in ledger and "****4242" in ledger
    assert card not in outbox
