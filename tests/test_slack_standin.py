"""The Slack Web API stand-in answers like Slack, and the signing helpers sign like Slack."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests import signing
from tests.slack_standin import SlackStandin

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandin]:
    async with SlackStandin() as standin:
        yield standin


def client_for(slack: SlackStandin, *, token: str | None = None, timeout: int = 5) -> AsyncWebClient:
    return AsyncWebClient(
        token=token or slack.token, base_url=slack.base_url, timeout=timeout, retry_handlers=[]
    )


async def error_of(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


# -- answers like Slack ----------------------------------------------------------------------


async def test_a_post_is_answered_with_the_channel_and_a_unique_ts_and_recorded_with_its_token(
    slack: SlackStandin,
) -> None:
    client = client_for(slack)

    first = await client.chat_postMessage(channel="C0WARROOM", text="one", blocks=[SECTION])
    second = await client.chat_postMessage(channel="C0WARROOM", text="two")

    assert first["ok"] and first["channel"] == "C0WARROOM"
    assert first["ts"] == "1700000000.000100" and second["ts"] == "1700000000.000200"
    assert first["message"]["text"] == "one"
    (call, _) = slack.calls("chat.postMessage")
    assert call.token == slack.token
    assert call.body["blocks"] == [SECTION]
    assert [c.body["text"] for c in slack.posted_to("C0WARROOM")] == ["one", "two"]


async def test_a_post_to_a_user_id_lands_in_the_bots_dm_with_them(slack: SlackStandin) -> None:
    answer = await client_for(slack).chat_postMessage(channel="U0REL1", text="your changes")

    assert answer["channel"].startswith("D")
    assert len(slack.posted_to("U0REL1")) == 1


async def test_a_missing_token_is_not_authed_and_an_unknown_one_invalid_auth(slack: SlackStandin) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(slack.base_url + "chat.postMessage", json={"channel": "C1", "text": "x"}) as res,
    ):
        missing = await res.json()
    unknown = await error_of(
        client_for(slack, token="xoxb-not-ours").chat_postMessage(channel="C1", text="x")
    )

    assert missing == {"ok": False, "error": "not_authed"}
    assert unknown.response["error"] == "invalid_auth"
    assert slack.calls("chat.postMessage")[1].token == "xoxb-not-ours"
    assert slack.posted_to("C1") == []


async def test_a_post_without_a_channel_or_to_a_rejected_one_is_refused_like_slack(
    slack: SlackStandin,
) -> None:
    slack.reject_channel("C0GONE", "not_in_channel")
    client = client_for(slack)

    no_channel = await error_of(client.api_call("chat.postMessage", json={"text": "x"}))
    gone = await error_of(client.chat_postMessage(channel="C0GONE", text="x"))

    assert no_channel.response["error"] == "channel_not_found"
    assert gone.response["error"] == "not_in_channel"


async def test_a_standin_with_known_channels_refuses_others() -> None:
    async with SlackStandin(channels={"C0WARROOM"}) as strict:
        client = client_for(strict)
        await client.chat_postMessage(channel="C0WARROOM", text="x")
        other = await error_of(client.chat_postMessage(channel="C0OTHER", text="x"))

    assert other.response["error"] == "channel_not_found"


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"blocks": [SECTION] * 51, "text": "x"}, "invalid_blocks"),
        ({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}]}, "invalid_blocks"),
        ({"blocks": [{"type": "no_such_block"}]}, "invalid_blocks"),
        ({"text": "z" * 40_001}, "msg_too_long"),
        ({}, "no_text"),
    ],
)
async def test_content_over_slacks_limits_is_refused(
    slack: SlackStandin, arguments: dict[str, Any], error: str
) -> None:
    refused = await error_of(
        client_for(slack).api_call("chat.postMessage", json={"channel": "C1", **arguments})
    )

    assert refused.response.status_code == 200
    assert refused.response["error"] == error


async def test_chat_update_replaces_a_posted_message_and_refuses_an_unknown_ts(slack: SlackStandin) -> None:
    client = client_for(slack)
    posted = await client.chat_postMessage(channel="C0WARROOM", text="v2")

    await client.chat_update(channel="C0WARROOM", ts=posted["ts"], text="v2 superseded by v3")
    unknown = await error_of(client.chat_update(channel="C0WARROOM", ts="1.000000", text="x"))

    assert slack.message("C0WARROOM", posted["ts"]).text == "v2 superseded by v3"
    assert unknown.response["error"] == "message_not_found"


async def test_ephemeral_posts_answer_a_message_ts_and_views_are_kept_per_user(slack: SlackStandin) -> None:
    client = client_for(slack)

    ephemeral = await client.chat_postEphemeral(channel="C0WARROOM", user="U0ENG1", text="only you")
    await client.views_publish(user_id="U0ENG1", view={"type": "home", "blocks": [SECTION]})

    assert ephemeral["message_ts"]
    assert slack.views("U0ENG1") == [{"type": "home", "blocks": [SECTION]}]


async def test_auth_test_users_info_and_conversations_open_answer_and_others_are_ok(
    slack: SlackStandin,
) -> None:
    client = client_for(slack)

    auth = await client.auth_test()
    user = await client.users_info(user="U0ENG1")
    dm = await client.conversations_open(users="U0ENG1")
    other = await client.api_call("reactions.add", json={"name": "eyes"})

    assert auth["user_id"] and auth["team_id"]
    assert user["user"]["id"] == "U0ENG1"
    assert dm["channel"]["id"] == "D0ENG1"
    assert other["ok"]


async def test_a_form_encoded_call_is_parsed_with_its_json_fields_and_token_parameter(
    slack: SlackStandin,
) -> None:
    form = {"token": slack.token, "channel": "C1", "text": "x", "blocks": json.dumps([SECTION])}

    async with (
        aiohttp.ClientSession() as session,
        session.post(slack.base_url + "chat.postMessage", data=form) as res,
    ):
        answer = await res.json()

    assert answer["ok"]
    (call,) = slack.calls("chat.postMessage")
    assert call.token == slack.token and call.body["blocks"] == [SECTION]


# -- programmed faults -----------------------------------------------------------------------


async def test_beyond_the_rate_it_answers_429_with_retry_after_and_records_the_refusal(
    slack: SlackStandin,
) -> None:
    slack.rate_limit("chat.postMessage", per_second=2)
    client = client_for(slack)

    await client.chat_postMessage(channel="C1", text="1")
    await client.chat_postMessage(channel="C1", text="2")
    limited = await error_of(client.chat_postMessage(channel="C1", text="3"))

    assert limited.response.status_code == 429
    assert limited.response.headers["Retry-After"] == "1"
    assert limited.response["error"] == "ratelimited"
    assert [c.status for c in slack.calls("chat.postMessage")] == [200, 200, 429]
    assert len(slack.posted_to("C1")) == 2


async def test_the_rate_limit_is_per_method(slack: SlackStandin) -> None:
    slack.rate_limit("chat.postMessage", per_second=1)
    client = client_for(slack)
    await client.chat_postMessage(channel="C1", text="1")

    await client.chat_postEphemeral(channel="C1", user="U1", text="still fine")


async def test_a_rate_limited_method_accepts_again_after_retry_after(slack: SlackStandin) -> None:
    slack.rate_limit("chat.postMessage", per_second=1)
    client = client_for(slack)
    await client.chat_postMessage(channel="C1", text="1")
    limited = await error_of(client.chat_postMessage(channel="C1", text="2"))
    wait = float(limited.response.headers["Retry-After"])

    await asyncio.sleep(wait)
    await client.chat_postMessage(channel="C1", text="2")

    assert len(slack.posted_to("C1")) == 2


async def test_fail_next_answers_5xx_the_given_number_of_times_then_recovers(slack: SlackStandin) -> None:
    slack.fail_next("chat.postMessage", status=503, times=2)
    client = client_for(slack)

    first = await error_of(client.chat_postMessage(channel="C1", text="x"))
    second = await error_of(client.chat_postMessage(channel="C1", text="x"))
    third = await client.chat_postMessage(channel="C1", text="x")

    assert first.response.status_code == second.response.status_code == 503
    assert third["ok"]
    assert len(slack.posted_to("C1")) == 1


async def test_a_fault_for_one_channel_leaves_the_others_alone(slack: SlackStandin) -> None:
    slack.fail_next("chat.postMessage", status=500, times=5, channel="C0SHARD")
    client = client_for(slack)

    await client.chat_postMessage(channel="C0OTHER", text="x")
    failed = await error_of(client.chat_postMessage(channel="C0SHARD", text="x"))
    slack.clear_faults()
    await client.chat_postMessage(channel="C0SHARD", text="x")

    assert failed.response.status_code == 500
    assert len(slack.posted_to("C0SHARD")) == 1


async def test_error_next_answers_a_slack_error_once(slack: SlackStandin) -> None:
    slack.error_next("chat.update", "cant_update_message")
    client = client_for(slack)
    posted = await client.chat_postMessage(channel="C1", text="x")

    refused = await error_of(client.chat_update(channel="C1", ts=posted["ts"], text="y"))
    await client.chat_update(channel="C1", ts=posted["ts"], text="y")

    assert refused.response["error"] == "cant_update_message"


async def test_down_answers_503_to_everything_until_up(slack: SlackStandin) -> None:
    client = client_for(slack)
    slack.down()

    post = await error_of(client.chat_postMessage(channel="C1", text="x"))
    auth = await error_of(client.auth_test())
    slack.up()
    recovered = await client.chat_postMessage(channel="C1", text="x")

    assert post.response.status_code == auth.response.status_code == 503
    assert recovered["ok"]


async def test_a_slow_standin_makes_a_short_client_timeout_expire(slack: SlackStandin) -> None:
    slack.slow(1.5)

    with pytest.raises(TimeoutError):
        await client_for(slack, timeout=1).chat_postMessage(channel="C1", text="x")


async def test_posts_to_a_response_url_are_recorded(slack: SlackStandin) -> None:
    url = slack.response_url("cmd-1")

    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"response_type": "ephemeral", "text": "done"}) as res,
    ):
        assert res.status == 200

    assert slack.responses("cmd-1") == [{"response_type": "ephemeral", "text": "done"}]


# -- signing ---------------------------------------------------------------------------------


def test_a_signed_request_verifies_with_slack_sdks_verifier_and_a_changed_body_does_not() -> None:
    request = signing.signed_slash_command(secret=SECRET, text="status")
    verifier = SignatureVerifier(signing_secret=SECRET)

    assert verifier.is_valid_request(request.body, request.headers)
    assert not verifier.is_valid_request(request.body + "x", request.headers)
    assert not SignatureVerifier(signing_secret="other").is_valid_request(request.body, request.headers)


def test_the_signature_is_hmac_sha256_over_v0_timestamp_and_body() -> None:
    # Slack's documented example: secret, timestamp and body from "Verifying requests from Slack".
    body = (
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )

    assert signing.signature(body, secret=SECRET, timestamp=1531420618) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_a_slash_command_body_has_slacks_fields() -> None:
    body = parse_qs(signing.slash_command_body(text="late canary-a +40m", response_url="http://x/response/1"))

    assert set(body) >= {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "response_url",
        "trigger_id",
    }
    assert body["command"] == ["/cutover"] and body["text"] == ["late canary-a +40m"]


@pytest.fixture
async def bolt(slack: SlackStandin) -> AsyncApp:
    # process_before_response: the listener has finished when async_dispatch returns.
    return AsyncApp(signing_secret=SECRET, client=client_for(slack), process_before_response=True)


async def dispatch(app: AsyncApp, request: signing.SignedRequest) -> Any:
    headers: dict[str, str | Sequence[str]] = {**request.headers}
    return await app.async_dispatch(AsyncBoltRequest(body=request.body, headers=headers))


async def test_bolt_accepts_a_signed_slash_command_and_its_respond_reaches_the_response_url(
    slack: SlackStandin, bolt: AsyncApp
) -> None:
    seen: list[dict[str, Any]] = []

    @bolt.command("/cutover")
    async def cutover(ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        seen.append(command)
        await respond(text=f"you said {command['text']}")

    url = slack.response_url("cmd-7")
    response = await dispatch(
        bolt, signing.signed_slash_command(secret=SECRET, text="status", response_url=url)
    )

    assert response.status == 200
    assert seen[0]["user_id"] == "U0ENG1" and seen[0]["channel_id"] == "C0WARROOM"
    assert slack.responses("cmd-7")[0]["text"] == "you said status"
    (auth,) = slack.calls("auth.test")  # Bolt checked its token against the stand-in
    assert auth.token == slack.token


async def test_bolt_routes_a_signed_button_click_by_action_id_with_its_value(
    slack: SlackStandin, bolt: AsyncApp
) -> None:
    clicks: list[dict[str, Any]] = []

    @bolt.action("adopt_packet")
    async def adopt(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        clicks.append({"action": action, "user": body["user"]["id"], "ts": body["container"]["message_ts"]})

    request = signing.signed_block_actions(
        secret=SECRET,
        action_id="adopt_packet",
        value='{"run":"r1","v":3}',
        user_id="U0REL1",
        message_ts="1700000000.000300",
    )
    response = await dispatch(bolt, request)

    assert response.status == 200
    assert clicks == [{"action": clicks[0]["action"], "user": "U0REL1", "ts": "1700000000.000300"}]
    assert clicks[0]["action"]["value"] == '{"run":"r1","v":3}'


async def test_bolt_routes_a_signed_app_home_opened_event(slack: SlackStandin, bolt: AsyncApp) -> None:
    opened: list[str] = []

    @bolt.event("app_home_opened")
    async def home(event: dict[str, Any], client: AsyncWebClient) -> None:
        opened.append(event["user"])
        await client.views_publish(user_id=event["user"], view={"type": "home", "blocks": [SECTION]})

    response = await dispatch(bolt, signing.signed_app_home_opened(secret=SECRET, user="U0RISK1"))

    assert response.status == 200
    assert opened == ["U0RISK1"]
    assert len(slack.views("U0RISK1")) == 1


async def test_bolt_refuses_a_request_signed_with_another_secret_or_too_old(bolt: AsyncApp) -> None:
    wrong = signing.signed_slash_command(secret="not-the-secret", text="status")
    stale = signing.signed_slash_command(secret=SECRET, text="status", timestamp=int(time.time()) - 600)

    assert (await dispatch(bolt, wrong)).status == 401
    assert (await dispatch(bolt, stale)).status == 401
