"""Requests to the bot built and signed exactly as Slack builds and signs them.

Slack signs `v0:{X-Slack-Request-Timestamp}:{raw body}` with HMAC-SHA256 keyed by the app's
signing secret and sends `X-Slack-Signature: v0=<hex digest>`. The bodies follow Slack's
documented payloads: a slash command is a form body; an interaction is a form body whose single
`payload` field is JSON; an Events API callback is a JSON body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

TEAM_ID = "T0STANDIN"
TEAM_DOMAIN = "standin"
API_APP_ID = "A0CUTOVER"
# The deprecated verification token: Slack still sends it; Bolt ignores it.
VERIFICATION_TOKEN = "verification-token-not-a-secret"
WAR_ROOM = "C0WARROOM"
WAR_ROOM_NAME = "cutover-war-room"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    body: str
    headers: dict[str, str]


def signature(body: str | bytes, *, secret: str, timestamp: int) -> str:
    raw = body.encode() if isinstance(body, str) else body
    base = b"v0:" + str(timestamp).encode() + b":" + raw
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def sign(body: str, *, secret: str, content_type: str, timestamp: int | None = None) -> SignedRequest:
    """`body` with Slack's signature headers; `timestamp` defaults to now (Bolt rejects > 5 min old)."""
    at = int(time.time()) if timestamp is None else timestamp
    return SignedRequest(
        body=body,
        headers={
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(at),
            "X-Slack-Signature": signature(body, secret=secret, timestamp=at),
        },
    )


def slash_command_body(
    *,
    text: str,
    user_id: str = "U0ENG1",
    user_name: str = "eng1",
    channel_id: str = WAR_ROOM,
    channel_name: str = WAR_ROOM_NAME,
    command: str = "/cutover",
    response_url: str = "https://hooks.slack.com/commands/T0/1/x",
    trigger_id: str = "1337.42.abcdef",
    team_id: str = TEAM_ID,
    enterprise_id: str | None = None,
) -> str:
    enterprise = {"enterprise_id": enterprise_id} if enterprise_id else {}
    return urlencode(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            **enterprise,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": API_APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )


def block_actions_payload(
    *,
    action_id: str,
    value: str,
    user_id: str = "U0REL1",
    username: str = "rel1",
    channel_id: str = WAR_ROOM,
    channel_name: str = WAR_ROOM_NAME,
    message_ts: str = "1700000000.000100",
    block_id: str = "actions",
    blocks: list[dict[str, Any]] | None = None,
    response_url: str = "https://hooks.slack.com/actions/T0/1/x",
    trigger_id: str = "1337.43.abcdef",
    action_ts: str | None = None,
    team_id: str = TEAM_ID,
    enterprise_id: str | None = None,
    is_ephemeral: bool = False,
    from_home: bool = False,
) -> dict[str, Any]:
    """A `block_actions` interaction for one button click on a bot message in a channel, or
    (`from_home`) on the bot's App Home view: then Slack sends no channel and no response_url."""
    if from_home:
        return {
            "type": "block_actions",
            "user": {"id": user_id, "username": username, "name": username, "team_id": team_id},
            "api_app_id": API_APP_ID,
            "token": VERIFICATION_TOKEN,
            "container": {"type": "view", "view_id": "V0HOME"},
            "trigger_id": trigger_id,
            "team": {"id": team_id, "domain": TEAM_DOMAIN},
            "enterprise": None,
            "is_enterprise_install": False,
            "view": {"id": "V0HOME", "type": "home", "blocks": blocks or [], "team_id": team_id},
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id,
                    "text": {"type": "plain_text", "text": action_id, "emoji": True},
                    "value": value,
                    "type": "button",
                    "action_ts": action_ts or f"{time.time():.6f}",
                }
            ],
        }
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": username, "name": username, "team_id": team_id},
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": is_ephemeral,
        },
        "trigger_id": trigger_id,
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": {"id": enterprise_id, "name": "Grid"} if enterprise_id else None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "message": {
            "type": "message",
            "subtype": "bot_message",
            "text": "",
            "ts": message_ts,
            "bot_id": "B0CUTOVERBOT",
            "blocks": blocks or [],
        },
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": action_id, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": action_ts or f"{time.time():.6f}",
            }
        ],
    }


def block_actions_body(**kwargs: Any) -> str:
    """The form body Slack posts for a click: `payload=<JSON>`. Keywords as `block_actions_payload`."""
    return urlencode({"payload": json.dumps(block_actions_payload(**kwargs), separators=(",", ":"))})


def app_home_opened_body(
    *,
    user: str = "U0ENG1",
    channel: str = "D0CUTOVER",
    event_id: str = "Ev0HOME1",
    event_time: int | None = None,
    team_id: str = TEAM_ID,
) -> str:
    """An Events API `event_callback` for a user opening the bot's Home tab."""
    at = int(time.time()) if event_time is None else event_time
    event = {
        "type": "app_home_opened",
        "user": user,
        "channel": channel,
        "tab": "home",
        "event_ts": f"{at}.000100",
    }
    return _event_callback(event, event_id=event_id, at=at, team_id=team_id)


def member_joined_channel_body(
    *,
    user: str = "U0CUTOVERBOT",
    channel: str = "C0BRIDGE",
    inviter: str = "U0ENG1",
    event_id: str = "Ev0JOIN1",
    event_time: int | None = None,
    team_id: str = TEAM_ID,
) -> str:
    """An Events API `event_callback` for someone (by default the bot itself) joining a channel."""
    at = int(time.time()) if event_time is None else event_time
    event = {
        "type": "member_joined_channel",
        "user": user,
        "channel": channel,
        "channel_type": "C",
        "team": team_id,
        "inviter": inviter,
        "event_ts": f"{at}.000200",
    }
    return _event_callback(event, event_id=event_id, at=at, team_id=team_id)


def _event_callback(event: dict[str, Any], *, event_id: str, at: int, team_id: str) -> str:
    return json.dumps(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "api_app_id": API_APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": at,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team_id,
                    "user_id": "U0CUTOVERBOT",
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
    )


def signed_slash_command(*, secret: str, timestamp: int | None = None, **kwargs: Any) -> SignedRequest:
    return sign(
        slash_command_body(**kwargs),
        secret=secret,
        timestamp=timestamp,
        content_type="application/x-www-form-urlencoded",
    )


def signed_block_actions(*, secret: str, timestamp: int | None = None, **kwargs: Any) -> SignedRequest:
    return sign(
        block_actions_body(**kwargs),
        secret=secret,
        timestamp=timestamp,
        content_type="application/x-www-form-urlencoded",
    )


def signed_app_home_opened(*, secret: str, timestamp: int | None = None, **kwargs: Any) -> SignedRequest:
    return sign(
        app_home_opened_body(**kwargs), secret=secret, timestamp=timestamp, content_type="application/json"
    )


def signed_member_joined_channel(
    *, secret: str, timestamp: int | None = None, **kwargs: Any
) -> SignedRequest:
    return sign(
        member_joined_channel_body(**kwargs),
        secret=secret,
        timestamp=timestamp,
        content_type="application/json",
    )
