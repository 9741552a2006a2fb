"""app-manifest.yml: valid for Slack, and in step with bot/ids.py and the Bolt listeners.

Slack's manifest schema is not ours to copy into the project: it is read from ../shared/ (there
in CI, absent in a fresh clone). Without it the schema test skips naming the path it looked at,
and fails under REQUIRE_INTEGRATION=1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.ids import SLASH_COMMAND, ActionId, ButtonValue, EventName
from bot.render import render, render_home
from packets.messages import MessageKind
from tests import signing
from tests.integration import REQUIRE_ENV, unavailable
from tests.test_render import HOME, SAMPLES

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "app-manifest.yml"
SCHEMA = REPO.parent / "shared" / "slack" / "manifest.schema.1.0.0.json"
EVENTS_URL = "https://cutover.example.com/slack/events"
SECRET = "manifest-test-signing-secret"


def slack_schema(path: Path) -> dict[str, Any]:
    """Slack's manifest schema at `path`, or a skip naming it (a failure under REQUIRE_INTEGRATION=1)."""
    if not path.is_file():
        unavailable(f"Slack's app manifest schema is not at {path} (CI provides ../shared/slack/)")
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    return loaded


def test_the_manifest_is_valid_against_slacks_manifest_schema(manifest: dict[str, Any]) -> None:
    validator = Draft7Validator(slack_schema(SCHEMA))

    problems = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)
    ]

    assert problems == []


def test_without_the_schema_the_check_skips_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    absent = tmp_path / "shared" / "slack" / "manifest.schema.1.0.0.json"

    with pytest.raises(pytest.skip.Exception, match=re.escape(str(absent))):
        slack_schema(absent)


def test_without_the_schema_the_check_fails_when_integration_is_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    absent = tmp_path / "shared" / "slack" / "manifest.schema.1.0.0.json"

    with pytest.raises(pytest.fail.Exception, match=re.escape(str(absent))):
        slack_schema(absent)


def test_the_manifest_declares_exactly_the_slash_command_the_bot_listens_to(manifest: dict[str, Any]) -> None:
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == [SLASH_COMMAND]


def test_the_manifest_subscribes_to_exactly_the_events_the_bot_listens_to(manifest: dict[str, Any]) -> None:
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == {e.value for e in EventName}


def test_interactivity_is_on_because_the_bot_renders_buttons(manifest: dict[str, Any]) -> None:
    assert list(ActionId)
    assert manifest["settings"]["interactivity"]["is_enabled"] is True


def test_every_request_goes_to_the_one_slack_events_endpoint(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    urls = {
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
        *(c["url"] for c in manifest["features"]["slash_commands"]),
    }

    assert urls == {EVENTS_URL}
    assert settings["socket_mode_enabled"] is False


def test_the_bot_asks_for_the_fewest_scopes_it_needs(manifest: dict[str, Any]) -> None:
    # chat:write covers channel posts, DMs by user id, updates and ephemerals; views.publish and
    # app_home_opened need no scope; im:write would only be needed for conversations.open.
    # channels:history and groups:history: `ledger witness` reads the heads back from the war room.
    # channels:read and groups:read: member_joined_channel, the bot invited to a war room.
    # files:write: the evidence packet shared as a file.
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == [
        "channels:history",
        "channels:read",
        "chat:write",
        "commands",
        "files:write",
        "groups:history",
        "groups:read",
    ]
    assert "user" not in manifest["oauth_config"]["scopes"]


def test_the_home_tab_is_on_and_the_messages_tab_shows_dms_read_only(manifest: dict[str, Any]) -> None:
    app_home = manifest["features"]["app_home"]

    assert app_home["home_tab_enabled"] is True
    assert app_home["messages_tab_enabled"] is True and app_home["messages_tab_read_only_enabled"] is True


def rendered_action_ids() -> set[str]:
    found: set[str] = set()
    messages = [render(kind, data).blocks for kind, data in SAMPLES.items()]
    proposed = render(MessageKind.PACKET_POSTED, {**SAMPLES[MessageKind.PACKET_POSTED]})
    authoritative = render(
        MessageKind.PACKET_POSTED,
        {
            **SAMPLES[MessageKind.PACKET_POSTED],
            "packet": {**SAMPLES[MessageKind.PACKET_POSTED]["packet"], "state": "authoritative"},
        },
    )
    for blocks in [*messages, proposed.blocks, authoritative.blocks, render_home(HOME)["blocks"]]:
        for block in blocks:
            elements = [*block.get("elements", []), block.get("accessory") or {}]
            found |= {e["action_id"] for e in elements if e.get("type") == "button"}
    return found


def test_the_templates_render_every_action_id_and_no_other() -> None:
    assert rendered_action_ids() == {a.value for a in ActionId}


# -- listeners ---------------------------------------------------------------------------------


def requests_slack_sends() -> dict[str, signing.SignedRequest]:
    """One signed request per thing the manifest makes Slack send: the command, each button, each event."""
    requests = {SLASH_COMMAND: signing.signed_slash_command(secret=SECRET, text="help")}
    for action in ActionId:
        requests[action.value] = signing.signed_block_actions(
            secret=SECRET, action_id=action.value, value=ButtonValue(run="r1", v=1).encode()
        )
    builders = {
        EventName.APP_HOME_OPENED: signing.signed_app_home_opened,
        EventName.MEMBER_JOINED_CHANNEL: signing.signed_member_joined_channel,
    }
    for event in EventName:
        assert event in builders, f"add a request builder for {event} to tests/signing.py"
        requests[event.value] = builders[event](secret=SECRET)
    return requests


async def unrouted(app: AsyncApp) -> set[str]:
    """The commands, action ids and events for which `app` has no listener (Bolt would answer 404).

    Runs Bolt's own matchers on real signed requests without running any listener, so no use
    case is called. Reads `AsyncApp._async_listeners`: Bolt has no public listing."""
    missing: set[str] = set()
    for name, signed in requests_slack_sends().items():
        headers: dict[str, str | Sequence[str]] = {**signed.headers}
        request = AsyncBoltRequest(body=signed.body, headers=headers)
        matched = [
            await listener.async_matches(req=request, resp=BoltResponse(status=404))
            for listener in app._async_listeners
        ]
        if not any(matched):
            missing.add(name)
    return missing


def bare_app() -> AsyncApp:
    # AsyncApp checks its token (auth.test) lazily, on the first request: nothing goes out here.
    return AsyncApp(signing_secret=SECRET, token="xoxb-manifest-test")


def app_with_real_listeners() -> AsyncApp:
    """The bot's own listeners on a bare app. Registering only stores closures: nothing is called."""
    try:
        from bot.listeners import register
    except ImportError as exc:  # bot/listeners.py or what it imports is still being written
        pytest.skip(f"bot.listeners is not importable yet: {exc}")
    app = bare_app()
    register(app, deps=None, plans=None)  # type: ignore[arg-type]
    return app


async def test_the_route_check_finds_a_missing_listener() -> None:
    app = bare_app()

    @app.command(SLASH_COMMAND)
    async def command(ack: Any) -> None:
        await ack()

    @app.action(ActionId.ADOPT_PACKET.value)
    async def adopt(ack: Any) -> None:
        await ack()

    missing = await unrouted(app)

    assert missing == {a.value for a in ActionId} - {"adopt_packet"} | {e.value for e in EventName}


async def test_every_command_action_id_and_event_has_a_bot_listener() -> None:
    assert await unrouted(app_with_real_listeners()) == set()
