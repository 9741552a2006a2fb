"""Bolt listeners: parse the Slack payload, call one use case, render the answer. Nothing else.

Every listener acks first (inside Slack's 3 seconds) and does the work after. Every answer to
the person who acted is ephemeral; what the room must see travels through the outbox. Button
values say which run and which packet version or plan revision they were rendered for; the use
case authorizes from the store, never from the button.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from slack_bolt.app.async_app import AsyncApp

from bot.command_text import Parsed, Usage, parse
from bot.ids import SLASH_COMMAND, ActionId, ButtonValue, EventName
from bot.intents import PlanSource, run_text
from bot.render import render_home
from handlers import adoption, holds, runs, status
from handlers.commands import Acknowledge, AdoptPacket, RejectPacket, ReleaseHold, Rollback, SignOff
from handlers.deps import Deps
from handlers.outcome import Outcome
from packets.redact import redact

log = logging.getLogger("cutover_bot.listeners")

Respond = Callable[..., Awaitable[Any]]


def _reply(outcome: Outcome) -> dict[str, Any]:
    text = outcome.message
    if not outcome.ok and outcome.current_version is not None and f"v{outcome.current_version}" not in text:
        text = f"{text} (current packet: v{outcome.current_version})"
    prefix = "" if outcome.ok else ":no_entry: "
    return {"response_type": "ephemeral", "replace_original": False, "text": redact(prefix + text)}


NOT_OURS = "That button is not one this bot rendered; use /cutover packet."
FAILED = (
    "That failed on the bot's side (it is logged for the operators). "
    "Check /cutover status before trying again."
)


async def _guarded(call: Awaitable[Outcome]) -> Outcome:
    """The one error boundary after the ack: the person hears something, the log gets the trace."""
    try:
        return await call
    except Exception:
        log.exception("a use case failed after the ack")
        return Outcome.refused(FAILED)


def register(app: AsyncApp, *, deps: Deps, plans: PlanSource) -> None:
    """Attach every listener to `app`. The manifest test checks this list against app-manifest.yml."""

    @app.command(SLASH_COMMAND)
    async def cutover(ack: Any, command: dict[str, Any], respond: Respond) -> None:
        text = str(command.get("text", ""))
        try:
            parsed: Parsed = parse(text)
        except Usage as usage:
            await ack(response_type="ephemeral", text=redact(usage.line))
            return
        if parsed.name == "rollback":
            await ack()
            run = await status.run_in_channel(str(command.get("channel_id", "")), deps)
            if run is None:
                await respond(**_reply(Outcome.refused("No active cutover run in this channel.")))
            else:
                current = (await status.run_status(run, deps)).current_version
                await respond(**_confirm_rollback(parsed, run, current))
            return
        await ack()
        outcome = await _guarded(
            run_text(
                parsed,
                user=str(command.get("user_id", "")),
                channel=str(command.get("channel_id", "")),
                deps=deps,
                plans=plans,
            )
        )
        await respond(**_reply(outcome))

    clicks = _click_handlers(deps)

    async def on_click(ack: Any, body: dict[str, Any], respond: Respond) -> None:
        await ack()
        user = str(body.get("user", {}).get("id", ""))
        try:
            action = body["actions"][0]
            value = ButtonValue.decode(action["value"])
            handler = clicks[ActionId(action["action_id"])]
        except (KeyError, IndexError, TypeError, ValueError):
            await respond(**_reply(Outcome.refused(NOT_OURS)))
            return
        await respond(**_reply(await _guarded(handler(value, user))))

    for action_id in ActionId:
        app.action(action_id.value)(on_click)

    @app.event(EventName.APP_HOME_OPENED.value)
    async def home(event: dict[str, Any], client: Any) -> None:
        if event.get("tab") not in (None, "home"):
            return
        user = str(event.get("user", ""))
        outcome = await status.status_for_user(user, deps)
        await client.views_publish(user_id=user, view=render_home(outcome.data))


Click = Callable[[ButtonValue, str], Awaitable[Outcome]]


def _click_handlers(deps: Deps) -> dict[ActionId, Click]:
    """One use case per button; every click is authorized by the use case from the store."""
    no_version = Outcome.refused("That button names no packet version.")

    async def sign_off(value: ButtonValue, user: str) -> Outcome:
        return await runs.sign_off(
            SignOff(run=value.run, user=user, revision=value.rev or "", role=value.role), deps
        )

    async def adopt(value: ButtonValue, user: str) -> Outcome:
        if value.v is None:
            return no_version
        return await adoption.adopt_packet(AdoptPacket(run=value.run, user=user, version=value.v), deps)

    async def reject(value: ButtonValue, user: str) -> Outcome:
        if value.v is None:
            return no_version
        return await adoption.reject_packet(RejectPacket(run=value.run, user=user, version=value.v), deps)

    async def acknowledge(value: ButtonValue, user: str) -> Outcome:
        if value.v is None:
            return no_version
        return await adoption.acknowledge(Acknowledge(run=value.run, user=user, version=value.v), deps)

    async def release(value: ButtonValue, user: str) -> Outcome:
        if value.hold is None or value.v is None:
            return Outcome.refused("That button names no hold and version.")
        return await holds.release_hold(
            ReleaseHold(run=value.run, user=user, hold=value.hold, version=value.v), deps
        )

    async def confirm_rollback(value: ButtonValue, user: str) -> Outcome:
        # rb is "SCOPE:REASON", rendered by _confirm_rollback for the person who typed it.
        scope_text, _, reason_text = (value.rb or "").partition(":")
        scope: Literal["cohort", "all"] = "all" if scope_text == "all" else "cohort"
        reason = reason_text[:500] or "rollback confirmed"
        command = Rollback(run=value.run, user=user, scope=scope, reason=reason, version=value.v)
        return await runs.rollback(command, deps)

    return {
        ActionId.SIGN_OFF: sign_off,
        ActionId.ADOPT_PACKET: adopt,
        ActionId.REJECT_PACKET: reject,
        ActionId.ACKNOWLEDGE_PACKET: acknowledge,
        ActionId.RELEASE_HOLD: release,
        ActionId.CONFIRM_ROLLBACK: confirm_rollback,
    }


def _confirm_rollback(parsed: Parsed, run: str, version: int | None) -> dict[str, Any]:
    """A typed rollback is confirmed by a button, so a slip of the keyboard moves no traffic."""
    scope = parsed.scope or "cohort"
    what = "ALL traffic back to legacy" if scope == "all" else "the current cohort back one step"
    # The button names the packet version it was rendered for: a late or second click is refused.
    value = ButtonValue(run=run, v=version, rb=f"{scope}:{redact(parsed.reason)[:500]}").encode()
    return {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": redact(f"Roll back {what}? Reason: {parsed.reason}"),
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": redact(f"Roll back *{what}*?\nReason: {parsed.reason}")[:2900],
                },
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "style": "danger",
                        "action_id": ActionId.CONFIRM_ROLLBACK.value,
                        "text": {"type": "plain_text", "text": "Confirm rollback"},
                        "value": value[:2000],
                    }
                ],
            },
        ],
    }
