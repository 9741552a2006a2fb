"""Bolt listeners: parse the Slack payload, call one use case, render the answer. Nothing else.

Every listener acks first (inside Slack's 3 seconds) and does the work after. Every answer to
the person who acted is ephemeral and built in `bot.replies`; what the room must see travels
through the outbox (`handlers.outbox.post`). Button values say which run and which packet
version or plan revision they were rendered for; the use case authorizes from the store, never
from the button.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from slack_bolt.app.async_app import AsyncApp

from bot import replies
from bot.command_text import Parsed, Usage, parse
from bot.ids import SLASH_COMMAND, ActionId, ButtonValue, EventName
from bot.intents import PlanSource, dispatch, run_text
from handlers import status
from handlers.commands import (
    Acknowledge,
    AdoptPacket,
    RejectPacket,
    ReleaseHold,
    Rollback,
    ShowStatus,
    SignOff,
    StatusFor,
)
from handlers.deps import Deps
from handlers.outcome import Outcome
from packets.redact import redact

log = logging.getLogger("cutover_bot.listeners")

Respond = Callable[..., Awaitable[Any]]


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
            await ack(**replies.usage(usage.line))
            return
        if parsed.name == "rollback":
            await ack()
            run = await status.run_in_channel(str(command.get("channel_id", "")), deps)
            if run is None:
                await respond(**replies.reply(Outcome.refused("No active cutover run in this channel.")))
            else:
                current = (await dispatch(ShowStatus(run=run), deps)).current_version
                question = replies.confirm_rollback(
                    run=run, version=current, scope=parsed.scope or "cohort", reason=redact(parsed.reason)
                )
                await respond(**question)
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
        await respond(**replies.reply(outcome))

    clicks = _click_handlers(deps)

    async def on_click(ack: Any, body: dict[str, Any], respond: Respond) -> None:
        await ack()
        user = str(body.get("user", {}).get("id", ""))
        try:
            action = body["actions"][0]
            value = ButtonValue.decode(action["value"])
            handler = clicks[ActionId(action["action_id"])]
        except (KeyError, IndexError, TypeError, ValueError):
            await respond(**replies.reply(Outcome.refused(NOT_OURS)))
            return
        await respond(**replies.reply(await _guarded(handler(value, user))))

    for action_id in ActionId:
        app.action(action_id.value)(on_click)

    @app.event(EventName.APP_HOME_OPENED.value)
    async def home(event: dict[str, Any], client: Any) -> None:
        if event.get("tab") not in (None, "home"):
            return
        user = str(event.get("user", ""))
        outcome = await dispatch(StatusFor(user=user), deps)
        await client.views_publish(user_id=user, view=replies.home_view(outcome))


Click = Callable[[ButtonValue, str], Awaitable[Outcome]]


def _click_handlers(deps: Deps) -> dict[ActionId, Click]:
    """One use case per button; every click is authorized by the use case from the store."""
    no_version = Outcome.refused("That button names no packet version.")

    async def sign_off(value: ButtonValue, user: str) -> Outcome:
        return await dispatch(
            SignOff(run=value.run, user=user, revision=value.rev or "", role=value.role), deps
        )

    async def adopt(value: ButtonValue, user: str) -> Outcome:
        if value.v is None:
            return no_version
        return await dispatch(AdoptPacket(run=value.run, user=user, version=value.v), deps)

    async def reject(value: ButtonValue, user: str) -> Outcome:
        if value.v is None:
            return no_version
        return await dispatch(RejectPacket(run=value.run, user=user, version=value.v), deps)

    async def acknowledge(value: ButtonValue, user: str) -> Outcome:
        if value.v is None:
            return no_version
        return await dispatch(Acknowledge(run=value.run, user=user, version=value.v), deps)

    async def release(value: ButtonValue, user: str) -> Outcome:
        # A hold's own message binds its button to the hold alone (no version); a packet card's
        # button carries the card's version too.
        if value.hold is None:
            return Outcome.refused("That button names no hold.")
        return await dispatch(ReleaseHold(run=value.run, user=user, hold=value.hold, version=value.v), deps)

    async def confirm_rollback(value: ButtonValue, user: str) -> Outcome:
        # rb is "SCOPE:REASON", rendered by _confirm_rollback for the person who typed it.
        scope_text, _, reason_text = (value.rb or "").partition(":")
        scope: Literal["cohort", "all"] = "all" if scope_text == "all" else "cohort"
        reason = reason_text[:500] or "rollback confirmed"
        command = Rollback(run=value.run, user=user, scope=scope, reason=reason, version=value.v)
        return await dispatch(command, deps)

    return {
        ActionId.SIGN_OFF: sign_off,
        ActionId.ADOPT_PACKET: adopt,
        ActionId.REJECT_PACKET: reject,
        ActionId.ACKNOWLEDGE_PACKET: acknowledge,
        ActionId.RELEASE_HOLD: release,
        ActionId.CONFIRM_ROLLBACK: confirm_rollback,
    }
