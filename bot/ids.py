"""Every Slack identifier the bot owns: action ids, the slash command, events, message surfaces.

Nothing else in bot/ spells these as string literals; app-manifest.yml is checked against this
module by tests/test_manifest.py.

A button carries, in its `value`, the version of what it was rendered for (`ButtonValue`), so a
click on a stale packet or plan revision can be refused with the current version named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from packets.messages import MessageKind

SLASH_COMMAND = "/cutover"

# Slack's limit on a button's `value`.
BUTTON_VALUE_MAX = 2000


class ActionId(StrEnum):
    """The `action_id` of every button the bot renders; one listener each."""

    SIGN_OFF = "sign_off"  # approve one exact plan revision for one sign-off role
    ADOPT_PACKET = "adopt_packet"  # make a proposed packet version authoritative
    REJECT_PACKET = "reject_packet"  # turn a proposed packet version down
    ACKNOWLEDGE_PACKET = "acknowledge_packet"  # "I have read packet vN" (channel card or delta DM)
    RELEASE_HOLD = "release_hold"  # release one hold, as whichever role the clicker acts for
    CONFIRM_ROLLBACK = "confirm_rollback"  # second pair of eyes on a requested rollback


class EventName(StrEnum):
    """Events API subscriptions (bot events)."""

    APP_HOME_OPENED = "app_home_opened"
    # The bot invited to a channel: the run messages Slack refused there (not_in_channel) go again.
    MEMBER_JOINED_CHANNEL = "member_joined_channel"


class Surface(StrEnum):
    """Where a rendered message goes, which decides the Web API method the dispatcher calls."""

    CHANNEL = "channel"  # chat.postMessage, recipient is a channel id
    DM = "dm"  # chat.postMessage with channel=<user id>, no conversations.open round trip
    UPDATE = "update"  # chat.update of a message posted earlier (payload carries `target`)
    EPHEMERAL = "ephemeral"  # chat.postEphemeral, recipient is the user, payload carries `channel`
    HOME = "home"  # views.publish of the App Home tab, recipient is the user
    # A file shared in a channel (files.getUploadURLExternal, the upload, files.completeUploadExternal).
    FILE = "file"


SURFACE: dict[MessageKind, Surface] = {
    MessageKind.PLAN_SUMMARY: Surface.CHANNEL,
    MessageKind.SIGNOFF_RECORDED: Surface.CHANNEL,
    MessageKind.PACKET_POSTED: Surface.CHANNEL,
    MessageKind.PACKET_SUPERSEDED: Surface.UPDATE,
    MessageKind.PACKET_PROPOSED_LINE: Surface.CHANNEL,
    MessageKind.DELTA_DM: Surface.DM,
    MessageKind.HOLD_OPENED: Surface.CHANNEL,
    MessageKind.HOLD_RELEASED: Surface.CHANNEL,
    MessageKind.GATE_ALERT: Surface.CHANNEL,
    MessageKind.TRAFFIC_SHIFT: Surface.CHANNEL,
    MessageKind.RUN_STATE: Surface.CHANNEL,
    MessageKind.ROLLBACK_REQUESTED: Surface.CHANNEL,
    MessageKind.EVIDENCE: Surface.CHANNEL,
    MessageKind.EVIDENCE_FILE: Surface.FILE,
    MessageKind.MANIFEST_FILE: Surface.FILE,
    MessageKind.REFUSAL: Surface.EPHEMERAL,
    MessageKind.REPLY: Surface.EPHEMERAL,
    MessageKind.STATUS: Surface.EPHEMERAL,
    MessageKind.HELP: Surface.EPHEMERAL,
    MessageKind.USAGE: Surface.EPHEMERAL,
    MessageKind.HOME_VIEW: Surface.HOME,
    MessageKind.LEDGER_HEAD: Surface.CHANNEL,
}


class ButtonValueError(ValueError):
    """A button value that is not one the bot rendered (tampered, truncated, or from another app)."""


@dataclass(frozen=True, slots=True)
class ButtonValue:
    """What a button carries: the run, and the version it was rendered for.

    Encoded as compact JSON with short keys, absent fields left out:
    `{"run":"r1","v":3}` (adopt, reject, acknowledge), `{"rev":"ab12…","role":"security","run":"r1"}`
    (sign-off), `{"hold":"h-7","run":"r1","v":3}` (release), `{"rb":"rb-1","run":"r1","v":3}` (rollback).
    """

    run: str
    v: int | None = None  # packet version
    rev: str | None = None  # plan revision
    role: str | None = None  # sign-off role
    hold: str | None = None  # hold id
    rb: str | None = None  # rollback request id

    def encode(self) -> str:
        fields: dict[str, Any] = {
            "run": self.run,
            "v": self.v,
            "rev": self.rev,
            "role": self.role,
            "hold": self.hold,
            "rb": self.rb,
        }
        text = json.dumps(
            {k: v for k, v in fields.items() if v is not None},
            separators=(",", ":"),
            sort_keys=True,
            ensure_ascii=False,
        )
        if len(text) > BUTTON_VALUE_MAX:
            raise ButtonValueError(f"button value is {len(text)} characters, Slack allows {BUTTON_VALUE_MAX}")
        return text

    @classmethod
    def decode(cls, text: str) -> ButtonValue:
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ButtonValueError("button value is not JSON") from exc
        if not isinstance(data, dict) or not isinstance(data.get("run"), str):
            raise ButtonValueError("button value names no run")
        unknown = set(data) - {"run", "v", "rev", "role", "hold", "rb"}
        if unknown:
            raise ButtonValueError(f"button value has unknown fields: {sorted(unknown)}")
        v = data.get("v")
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            raise ButtonValueError("button value version is not a number")
        for key in ("rev", "role", "hold", "rb"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ButtonValueError(f"button value {key} is not text")
        return cls(
            run=data["run"],
            v=v,
            rev=data.get("rev"),
            role=data.get("role"),
            hold=data.get("hold"),
            rb=data.get("rb"),
        )
