"""Slack surfaces a war room can trust (issue 16), end to end over HTTP against the stand-in.

Requests are signed exactly as Slack signs them (tests/signing.py); clicks are taken from the
blocks the bot actually posted (`BotHarness.click_on`), in the channel it posted them to.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.commands.serve import configure_logging
from bot.ids import ActionId
from bot.intents import dispatch
from handlers import shifts
from handlers.commands import CheckGates
from packets.manifest import manifest_hash
from tests import signing
from tests.bot_harness import BRIDGE, SECRET, BotHarness, bot_world, buttons_of, serving, wait_until
from tests.bundle_fixtures import BUNDLE_YAML
from tests.handler_fixtures import plan_text

ENG1, REL1, RISK1, SEC1, DBA1 = "U0ENG1", "U0REL1", "U0RISK1", "U0SEC1", "U0DBA1"
OTHER_TEAM = "T0ELSEWHERE"


@pytest.fixture
async def bot_harness(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[BotHarness]:
    async with bot_world(tmp_path, sqlite_template) as factory, serving(factory) as harness:
        yield harness


async def _opened(h: BotHarness) -> str:
    reply = await h.command("open bridge", user=ENG1)
    assert reply.ok, reply.text
    return await h.run_in(BRIDGE)


async def _started(h: BotHarness) -> str:
    run = await _opened(h)
    for user in (REL1, RISK1):
        assert (await h.command("signoff", user=user)).ok
    h.clock.advance(timedelta(minutes=5))
    assert (await h.command("start", user=ENG1)).ok
    return run


async def _no_run(h: BotHarness) -> None:
    async with h.bot.uow.transaction(read_only=True) as tx:
        assert await tx.runs.active() == []


# -- only our workspace ---------------------------------------------------------------------------


async def test_a_command_from_another_workspace_is_refused_in_the_ack_and_changes_nothing(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness

    reply = await h.command("open bridge", user=ENG1, team=OTHER_TEAM, wait=False)

    assert reply.status == 200
    assert reply.ack["response_type"] == "ephemeral"
    assert reply.ack["text"].startswith(":no_entry:") and "workspace" in reply.ack["text"]
    await _no_run(h)
    assert h.slack.responses() == []


async def test_a_click_from_another_workspace_is_refused_on_its_response_url_and_changes_nothing(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    run = await _opened(h)
    await h.drain()
    (summary,) = h.posted(BRIDGE, on="Plan bridge")
    before = await h.ledger_kinds(run)

    reply = await h.click(
        ActionId.SIGN_OFF,
        h.buttons(BRIDGE, ActionId.SIGN_OFF)[0],
        user=REL1,
        team=OTHER_TEAM,
        message=summary,
    )

    assert reply.refused and "workspace" in reply.text, reply.text
    assert await h.ledger_kinds(run) == before


async def test_a_request_from_another_enterprise_org_is_refused_when_the_installation_has_one(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    h.slack.enterprise_id = "E0OURS"

    elsewhere = await h.command("open bridge", user=ENG1, enterprise="E0THEIRS", wait=False)
    assert elsewhere.ack["text"].startswith(":no_entry:"), elsewhere.ack
    await _no_run(h)

    ours = await h.command("open bridge", user=ENG1, enterprise="E0OURS")
    assert ours.ok, ours.text


# -- only the war room ----------------------------------------------------------------------------


async def test_a_click_from_another_channel_than_the_runs_is_refused_with_why(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    run = await _opened(h)
    await h.drain()
    (value, *_) = h.buttons(BRIDGE, ActionId.SIGN_OFF)

    reply = await h.click(ActionId.SIGN_OFF, value, user=REL1, channel="C0RANDOM")

    assert reply.refused, reply.text
    assert "<#C0BRIDGE>" in reply.text and "<#C0RANDOM>" in reply.text, reply.text
    kinds = await h.ledger_kinds(run)
    assert "signoff" not in kinds and kinds[-1] == "refused"


async def test_an_unknown_action_id_is_answered_200_with_an_ephemeral_line(bot_harness: BotHarness) -> None:
    h = bot_harness

    reply = await h.click("frobnicate_everything", {"run": "r1"}, user=ENG1)

    assert reply.status == 200
    (answer,) = reply.replies
    assert answer["response_type"] == "ephemeral" and answer["text"].startswith(":no_entry:")
    assert "button" in answer["text"]


async def test_only_a_member_of_the_plans_roles_may_open_a_run(bot_harness: BotHarness) -> None:
    h = bot_harness

    stranger = await h.command("open bridge", user="U0STRANGER")
    assert stranger.refused and "role" in stranger.text, stranger.text
    await _no_run(h)

    delegate = await h.command("open bridge", user="U0SEC2")  # a delegate, not acting
    assert delegate.ok, delegate.text


async def test_a_click_in_the_bots_dm_is_taken_as_from_the_war_room(bot_harness: BotHarness) -> None:
    h = bot_harness
    await _started(h)
    assert (await h.command("late drain-queue +25m slow", user=ENG1)).ok
    assert (await h.command("adopt", user=REL1)).ok
    await h.drain()
    (dm,) = h.posted("D0SEC1", on="Packet v2 changes")

    reply = await h.click_on(dm, ActionId.ACKNOWLEDGE_PACKET, user=SEC1)

    assert reply.ok and "Acknowledged v2" in reply.text, reply.text


# -- user text is inert everywhere ----------------------------------------------------------------

EVIL = "<https://evil.example|click me> <!channel> & co"
INERT = "&lt;https://evil.example|click me&gt; &lt;!channel&gt; &amp; co"


def _shown(obj: object) -> str:
    """The JSON of a message or view without its buttons' values (data for the bot, never shown)."""

    def strip(node: object) -> object:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "value"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return json.dumps(strip(obj), ensure_ascii=False)


def _live_markup(text: str) -> list[str]:
    """The pieces of `text` Slack would turn into a link or a broadcast."""
    return [bad for bad in ("<https://evil.example", "<!channel>", "click me>") if bad in text]


async def test_a_reason_with_slack_markup_shows_literally_in_status_cards_dms_and_home(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    run = await _started(h)
    assert (await h.command(f"hold {EVIL}", user=SEC1)).ok
    late = await h.command(f"late drain-queue +25m {EVIL}", user=ENG1)
    assert late.ok, late.text
    assert (await h.command("adopt", user=REL1)).ok
    assert (await h.command(f"pause {EVIL}", user=ENG1)).ok
    status = await h.command("status", user=ENG1)
    packet = await h.command("packet", user=ENG1)
    rollback = await h.command(f"rollback all {EVIL}", user=ENG1)
    await h.drain()
    signed = signing.signed_app_home_opened(secret=SECRET, user=SEC1)
    assert (await h.post(signed.body, signed.headers))[0] == 200
    await wait_until(lambda: bool(h.slack.views(SEC1)), what="views.publish")

    assert INERT in status.text, status.text
    seen: list[str] = [status.text, packet.text, _shown(rollback.replies), late.text]
    for message in h.slack.messages(BRIDGE) + h.slack.messages("D0SEC1") + h.slack.messages("D0ENG1"):
        seen.append(message.text)
        seen.append(_shown(message.blocks))
    seen.append(_shown(h.slack.views(SEC1)))
    seen += [_shown(r) for r in h.slack.responses()]
    leaks = {text[:80]: _live_markup(text) for text in seen if _live_markup(text)}
    assert leaks == {}, leaks
    # The reason reached the room, the DMs and Home, shown as typed.
    everywhere = "\n".join(seen)
    assert everywhere.count("&lt;!channel&gt;") >= 5
    assert run


# -- one-shot buttons -----------------------------------------------------------------------------


async def _canary_at_five_percent(h: BotHarness) -> str:
    run = await _started(h)
    assert (await h.command("done drain-queue", user=ENG1)).ok
    assert (await h.command("done schema-check", user=DBA1)).ok
    assert (await h.command("release go-decision", user=REL1)).ok
    # Check before moving: the canary's gates are read for its shift (the next gate tick).
    await h.bot.scheduler.tick(run)
    await shifts.drain(h.bot.deps)
    assert [(s.cohort, s.percent) for s in h.actuator.shifts] == [("orders", 5)]
    return run


async def test_the_rollback_confirmation_names_cohorts_and_percentages_and_is_one_shot(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    run = await _canary_at_five_percent(h)

    asked = await h.command("rollback cohort error rate climbing", user=ENG1)
    assert asked.ok, asked.text
    assert "rollback_cohort" not in await h.ledger_kinds(run)  # asking moves nothing
    await h.drain()
    (question,) = h.posted(BRIDGE, on="Roll back")
    shown = question.text + json.dumps(question.blocks, ensure_ascii=False)
    assert "orders" in shown and "5% → 0%" in shown, shown

    first = await h.click_on(question, ActionId.CONFIRM_ROLLBACK, user=REL1)
    assert first.ok and "Rolled back" in first.text, first.text
    assert [(s.cohort, s.percent) for s in h.actuator.shifts] == [("orders", 5), ("orders", 0)]
    await h.drain()

    # The message is updated in place: who did what when, no buttons.
    (update,) = [c for c in h.slack.calls("chat.update") if c.body["ts"] == question.ts]
    assert update.ok
    now = h.slack.message(BRIDGE, question.ts)
    assert buttons_of(now.blocks) == []
    assert "<@U0REL1>" in now.text + json.dumps(now.blocks) and "5% → 0%" in json.dumps(
        now.blocks, ensure_ascii=False
    )

    # A second click on the used confirmation (from the payload Slack had) moves nothing.
    h.clock.advance(timedelta(minutes=3))
    second = await h.click_on(question, ActionId.CONFIRM_ROLLBACK, user=REL1)
    assert second.refused, second.text
    assert "already confirmed by <@U0REL1>" in second.text and "orders 0%" in second.text, second.text
    assert [(s.cohort, s.percent) for s in h.actuator.shifts] == [("orders", 5), ("orders", 0)]
    assert (await h.ledger_kinds(run)).count("rollback_cohort") == 1


async def test_a_rollback_confirmation_outdated_by_a_new_packet_is_retired_and_moves_nothing(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    run = await _canary_at_five_percent(h)
    assert (await h.command("rollback all vendor says stop", user=ENG1)).ok
    await h.drain()
    (question,) = h.posted(BRIDGE, on="Roll back")
    assert (await h.command("late canary +30m slow soak", user=ENG1)).ok
    assert (await h.command("adopt", user=REL1)).ok

    reply = await h.click_on(question, ActionId.CONFIRM_ROLLBACK, user=ENG1)

    assert reply.refused and "is current" in reply.text and "outdated" in reply.text, reply.text
    assert "global_rollback" not in await h.ledger_kinds(run)
    await h.drain()
    now = h.slack.message(BRIDGE, question.ts)
    assert buttons_of(now.blocks) == [] and "outdated" in now.text, now.text


async def test_a_used_adopt_button_is_replaced_by_who_adopted_when_and_a_second_click_changes_nothing(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    run = await _started(h)
    assert (await h.command("late drain-queue +25m slow", user=ENG1)).ok
    await h.drain()
    (line,) = h.posted(BRIDGE, on="v2 proposed")

    adopted = await h.click_on(line, ActionId.ADOPT_PACKET, user=REL1)
    assert adopted.ok, adopted.text
    await h.drain()
    now = h.slack.message(BRIDGE, line.ts)
    assert buttons_of(now.blocks) == [] and "adopted" in now.text and "<@U0REL1>" in now.text, now.text

    before = await h.ledger_kinds(run)
    again = await h.click_on(line, ActionId.ADOPT_PACKET, user=REL1)
    assert again.refused and "v2 is current" in again.text, again.text
    assert await h.ledger_kinds(run) == [*before, "refused"]


async def test_a_proposal_replaced_by_a_newer_one_or_rejected_loses_its_buttons(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    await _started(h)
    assert (await h.command("late drain-queue +25m slow", user=ENG1)).ok
    await h.drain()
    (v2,) = h.posted(BRIDGE, on="v2 proposed")
    assert (await h.command("late drain-queue +40m slower", user=ENG1)).ok
    await h.drain()
    (v3,) = h.posted(BRIDGE, on="v3 proposed")

    assert (await h.click_on(v3, ActionId.REJECT_PACKET, user=REL1)).ok
    await h.drain()

    replaced, rejected = h.slack.message(BRIDGE, v2.ts), h.slack.message(BRIDGE, v3.ts)
    assert buttons_of(replaced.blocks) == [] and "replaced by v3" in replaced.text, replaced.text
    assert buttons_of(rejected.blocks) == [] and "rejected" in rejected.text, rejected.text


async def test_an_acknowledged_dm_loses_its_button_and_an_unacknowledged_one_is_marked_outdated(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    await _started(h)
    assert (await h.command("late drain-queue +25m slow", user=ENG1)).ok
    assert (await h.command("adopt", user=REL1)).ok
    await h.drain()
    (sec_dm,) = h.posted("D0SEC1", on="Packet v2 changes")
    (eng_dm,) = h.posted("D0ENG1", on="Packet v2 changes")

    assert (await h.click_on(sec_dm, ActionId.ACKNOWLEDGE_PACKET, user=SEC1)).ok
    assert (await h.command("late drain-queue +45m slower", user=ENG1)).ok
    assert (await h.command("adopt", user=REL1)).ok
    await h.drain()

    acked = h.slack.message("D0SEC1", sec_dm.ts)
    assert buttons_of(acked.blocks) == [] and "Acknowledged" in json.dumps(acked.blocks), acked.blocks
    outdated = h.slack.message("D0ENG1", eng_dm.ts)
    assert buttons_of(outdated.blocks) == [] and "v3" in json.dumps(outdated.blocks), outdated.blocks
    stale = await h.click_on(eng_dm, ActionId.ACKNOWLEDGE_PACKET, user=ENG1)
    assert stale.refused and "v3" in stale.text, stale.text


async def test_each_sign_off_updates_the_plan_summary_in_place_and_the_last_one_leaves_no_button(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    await _opened(h)
    await h.drain()
    (summary,) = h.posted(BRIDGE, on="Plan bridge")

    assert (await h.click_on(summary, ActionId.SIGN_OFF, user=REL1, index=0)).ok
    await h.drain()
    after_one = h.slack.message(BRIDGE, summary.ts)
    assert [json.loads(b["value"])["role"] for b in buttons_of(after_one.blocks)] == ["payments-risk"]
    assert "<@U0REL1>" in json.dumps(after_one.blocks)

    assert (await h.click_on(after_one, ActionId.SIGN_OFF, user=RISK1)).ok
    await h.drain()
    assert buttons_of(h.slack.message(BRIDGE, summary.ts).blocks) == []


# -- logs -----------------------------------------------------------------------------------------


def _ours(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("cutover_bot") and r.levelno == level]


async def test_a_consequential_action_logs_one_info_line_and_scheduler_ticks_only_debug(
    bot_harness: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = bot_harness
    run = await _canary_at_five_percent(h)
    await h.drain()
    caplog.clear()
    caplog.set_level(logging.DEBUG)

    for _ in range(5):  # what the scheduler does every interval
        h.clock.advance(timedelta(seconds=30))
        await dispatch(CheckGates(run=run), h.bot.deps)
    await h.drain()
    chatter = _ours(caplog, logging.INFO)
    assert chatter == [], [r.getMessage() for r in chatter]
    assert _ours(caplog, logging.DEBUG)  # still there for whoever turns DEBUG on

    caplog.clear()
    assert (await h.command("hold vendor on the phone", user=SEC1)).ok
    await h.drain()
    (line,) = [r.getMessage() for r in _ours(caplog, logging.INFO)]
    assert "open hold" in line and run in line and SEC1 in line, line


def test_serve_keeps_apschedulers_per_job_lines_out_of_the_info_log() -> None:
    aps = logging.getLogger("apscheduler")
    before = aps.level
    try:
        configure_logging()
        assert aps.level >= logging.WARNING
        assert not aps.isEnabledFor(logging.INFO)
    finally:
        aps.setLevel(before)


# -- App Home -------------------------------------------------------------------------------------


async def test_a_click_on_app_home_is_answered_by_dm_and_home_is_republished(bot_harness: BotHarness) -> None:
    h = bot_harness
    await _started(h)
    signed = signing.signed_app_home_opened(secret=SECRET, user=SEC1)
    assert (await h.post(signed.body, signed.headers))[0] == 200
    await wait_until(lambda: bool(h.slack.views(SEC1)), what="the Home view")
    (home,) = h.slack.views(SEC1)
    (ack,) = [b for b in buttons_of(home["blocks"]) if b["action_id"] == ActionId.ACKNOWLEDGE_PACKET]

    click = signing.signed_block_actions(
        secret=SECRET,
        action_id=ActionId.ACKNOWLEDGE_PACKET.value,
        value=ack["value"],
        user_id=SEC1,
        blocks=home["blocks"],
        from_home=True,
    )
    status, _ = await h.post(click.body, click.headers)

    assert status == 200
    await wait_until(lambda: bool(h.slack.posted_to(SEC1)), what="the answer by DM")
    (dm,) = h.slack.posted_to(SEC1)
    assert "Acknowledged v1" in dm.body["text"], dm.body
    await wait_until(lambda: len(h.slack.views(SEC1)) == 2, what="Home republished")
    again = h.slack.views(SEC1)[-1]
    assert not [b for b in buttons_of(again["blocks"]) if b["action_id"] == ActionId.ACKNOWLEDGE_PACKET]


async def test_home_is_republished_for_someone_a_change_concerns(bot_harness: BotHarness) -> None:
    h = bot_harness
    await _started(h)
    signed = signing.signed_app_home_opened(secret=SECRET, user=REL1)
    assert (await h.post(signed.body, signed.headers))[0] == 200
    await wait_until(lambda: bool(h.slack.views(REL1)), what="the Home view")

    assert (await h.command("hold vendor on the phone", user=SEC1)).ok

    await wait_until(lambda: len(h.slack.views(REL1)) == 2, what="REL1's Home republished")
    assert "vendor on the phone" in json.dumps(h.slack.views(REL1)[-1])


# -- Slack refusing a run's messages --------------------------------------------------------------


async def _opened_and_told(h: BotHarness) -> dict[str, Any]:
    """`/cutover open` by ENG1, its messages sent, and what the bot then told ENG1 about Slack's
    refusal on the command's response_url (after the command's own answer)."""
    opened = await h.command("open bridge", user=ENG1)
    assert opened.ok, opened.text
    await h.drain()
    await wait_until(
        lambda: len(h.slack.responses("r1")) == 2, what="the warning on the opener's response_url"
    )
    return h.slack.responses("r1")[-1]


def _undelivered_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "cutover_bot.undelivered" and r.levelno == logging.WARNING]


async def test_a_refused_token_is_told_once_and_every_message_waits_until_slack_takes_it(
    bot_harness: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = bot_harness
    h.slack.error_next("chat.postMessage", "invalid_auth", times=10_000)

    told = await _opened_and_told(h)
    assert told["response_type"] == "ephemeral" and "`invalid_auth`" in told["text"]
    assert "wait in the queue" in told["text"], told["text"]
    run = await h.run_in()
    assert {r.state for r in await h.outbox_rows(run)} == {"pending"}, "nothing is given up"

    h.clock.advance(timedelta(minutes=2))
    await h.drain()  # still refused: nobody is told again
    warnings = _undelivered_warnings(caplog)
    assert len(warnings) == 1 and len(h.slack.responses("r1")) == 2

    h.slack.clear_faults()  # the app reinstalled
    h.clock.advance(timedelta(minutes=10))
    await h.drain()
    assert {r.state for r in await h.outbox_rows(run)} == {"sent"}
    assert h.slack.messages(BRIDGE)[0].text.startswith("Plan bridge")


async def test_once_the_bot_is_invited_the_room_gets_what_slack_refused_in_order_and_once(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    h.slack.reject_channel(BRIDGE, "not_in_channel")
    assert (await h.command("open bridge", user=ENG1)).ok
    assert (await h.command("signoff", user=REL1)).ok
    await h.drain()
    run = await h.run_in()
    refused = [r.id for r in await h.outbox_rows(run) if r.recipient == BRIDGE and r.state == "failed"]
    assert refused and h.slack.messages(BRIDGE) == []

    # Someone else joining changes nothing; the bot joining puts the refused messages back.
    h.slack.accept_channel(BRIDGE)
    someone = signing.signed_member_joined_channel(
        secret=SECRET, user=RISK1, channel=BRIDGE, event_id="Ev0J1"
    )
    assert (await h.post(someone.body, someone.headers))[0] == 200
    await h.drain()
    assert h.slack.messages(BRIDGE) == []
    joined = signing.signed_member_joined_channel(secret=SECRET, channel=BRIDGE, event_id="Ev0J2")
    assert (await h.post(joined.body, joined.headers))[0] == 200
    await h.drain()

    rows = {r.id: r for r in await h.outbox_rows(run)}
    assert {i: rows[i].state for i in refused} == dict.fromkeys(refused, "sent")
    shown = h.slack.messages(BRIDGE)
    # The plan summary first (since updated in place into the live card), then its thread.
    assert shown[0].text.startswith("Plan bridge") and shown[0].thread_ts is None, [m.text for m in shown]
    assert shown[1].text.startswith("Packet v1") and shown[2].text.startswith("<@U0REL1> signed off")
    assert all(m.thread_ts == shown[0].ts for m in shown[1:] if m.thread_ts), (
        "the thread hangs off the summary"
    )
    again = signing.signed_member_joined_channel(secret=SECRET, channel=BRIDGE, event_id="Ev0J3")
    assert (await h.post(again.body, again.headers))[0] == 200
    await h.drain()
    assert len(h.slack.messages(BRIDGE)) == len(shown), "a second join posts nothing twice"


async def test_a_bot_not_in_the_channel_is_told_to_the_person_who_acted_and_logged_once(
    bot_harness: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = bot_harness
    h.slack.reject_channel(BRIDGE, "not_in_channel")

    told = await _opened_and_told(h)
    assert told["response_type"] == "ephemeral" and "not_in_channel" in told["text"]
    assert "invite" in told["text"], told["text"]

    assert (await h.command("signoff", user=REL1)).ok
    await h.drain()
    warnings = _undelivered_warnings(caplog)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]


async def test_the_evidence_packet_is_shared_as_a_file_in_the_runs_thread(bot_harness: BotHarness) -> None:
    h = bot_harness
    await _opened(h)
    run = await h.run_in()

    asked = await h.command("evidence", user=ENG1)
    assert asked.ok, asked.text
    await h.drain()

    [shared] = h.slack.files(BRIDGE)
    summary = h.slack.messages(BRIDGE)[0]
    assert shared.filename == f"{run}-evidence.md" and shared.title.startswith("Evidence: ")
    assert shared.data is not None and b"# Evidence: " in shared.data and run.encode() in shared.data
    assert shared.thread_ts == summary.ts, "in the run's thread, under its live card"
    assert shared.comment.endswith(f"the evidence packet of run {run}, as the bot exported it")
    assert [c.method for c in h.slack.calls() if c.method.startswith("files.")] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]


async def test_a_signer_shares_the_approval_manifest_in_the_war_room_as_the_file_the_ledger_names(
    bot_harness: BotHarness, tmp_path: Path
) -> None:
    h = bot_harness
    (tmp_path / "plans" / "rc.yaml").write_text(plan_text(channel=BRIDGE) + BUNDLE_YAML, encoding="utf-8")
    assert (await h.command("open rc", user=ENG1)).ok
    run = await h.run_in()

    early = await h.command("manifest", user=REL1)
    assert early.refused and "still waits for sign-off by release-authority, payments-risk" in early.text
    for user in (REL1, RISK1):
        assert (await h.command("signoff", user=user)).ok
    stranger = await h.command("manifest", user="U0NOBODY")
    assert stranger.refused and "does not act for any role in this plan" in stranger.text
    asked = await h.command("manifest", user=REL1)
    assert asked.ok, asked.text
    await h.drain()

    [shared] = h.slack.files(BRIDGE)
    assert shared.data is not None
    manifest = json.loads(shared.data)
    async with h.bot.uow.transaction(read_only=True) as tx:
        emitted = [e.payload["hash"] for e in await tx.ledger.entries(run) if e.kind == "manifest_emitted"]
    assert emitted == [manifest["hash"]] == [manifest_hash(manifest)], "one emission, the file's own hash"
    assert shared.filename == f"{run}-manifest-{manifest['hash'][:12]}.json"
    assert shared.thread_ts == h.slack.messages(BRIDGE)[0].ts, "in the run's thread"
    assert f"manifest {manifest['hash'][:12]} of run {run}" in shared.comment
    assert "for queue prod-deploy-east" in shared.comment and "manifest verify" in shared.comment
    assert "shared in the war room as a file" in asked.text
