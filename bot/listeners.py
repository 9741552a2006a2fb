"""Bolt listeners: parse the Slack payload, call one use case, render the answer. Nothing else.

Every listener acks first (inside Slack's 3 seconds) and does the work after: Slack hears the
ack as soon as it is given, and the listener's work waits for a processing slot inside `ack()`
(bot/intake.py), so nothing but parsing belongs before it. Every answer to the person who acted
is ephemeral and built in `bot.replies`; what the room must see travels through the outbox
(`handlers.outbox.post`). Button values say which run and which packet version or plan revision
they were rendered for; the use case authorizes from the store, never from the button.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot import messages as M
from bot import replies
from bot.command_text import Parsed, Usage, parse
from bot.ids import SLASH_COMMAND, ActionId, ButtonValue, EventName
from bot.intents import PlanSource, dispatch, run_text
from bot.undelivered import Undelivered
from handlers import flow, rejoin, status
from handlers.commands import (
    Acknowledge,
    AdoptPacket,
    RejectPacket,
    ReleaseHold,
    RequestRollback,
    Rollback,
    SignOff,
    StatusFor,
)
from handlers.deps import Deps
from handlers.outcome import Outcome
from packets.redact import redact

log = logging.getLogger("cutover_bot.listeners")

Respond = Callable[..., Awaitable[Any]]


NOT_OURS = M.UNKNOWN_BUTTON
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


# Refusals answered on a response_url after the ack; kept so the loop does not drop them midway.
_ANSWERING: set[asyncio.Task[Any]] = set()


def _later(call: Awaitable[Any]) -> None:
    async def run() -> None:
        try:
            await call
        except Exception:
            log.exception("answering a refused request failed")

    task = asyncio.ensure_future(run())
    _ANSWERING.add(task)
    task.add_done_callback(_ANSWERING.discard)


async def settle_answers(timeout: float) -> None:
    """Let the answers and App Home republishes still in the background finish (shutdown: before
    the database engine is disposed under them); past `timeout` they are cancelled."""
    if not _ANSWERING:
        return
    _done, late = await asyncio.wait(set(_ANSWERING), timeout=timeout)
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)


def _foreign(context: AsyncBoltContext) -> bool:
    """Whether the request comes from another workspace (or Enterprise Grid org) than the one
    this bot is installed in, as `auth.test` reported it for the bot token."""
    installed = context.authorize_result
    if installed is None:
        return False  # no token check for this request (Bolt's url_verification, ssl_check)
    if installed.enterprise_id and context.enterprise_id != installed.enterprise_id:
        return True
    return bool(installed.team_id) and context.team_id != installed.team_id


async def only_our_workspace(
    context: AsyncBoltContext, body: dict[str, Any], next: Callable[[], Awaitable[None]]
) -> BoltResponse | None:
    """Refuse what another workspace sends, before any listener: a command is answered in its ack
    (HTTP 200, ephemeral), a click on its response_url, an event is acknowledged and ignored."""
    if not _foreign(context):
        await next()
        return None
    installed = context.authorize_result
    kind = "command" if "command" in body else str(body.get("type") or "request")
    log.warning(
        M.LOG.foreign_request,
        kind,
        context.team_id,
        context.enterprise_id,
        installed.team_id if installed else None,
        installed.enterprise_id if installed else None,
    )
    if "command" in body:
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": M.NOT_OUR_WORKSPACE})
    if context.response_url and context.respond is not None:
        _later(context.respond(response_type="ephemeral", replace_original=False, text=M.NOT_OUR_WORKSPACE))
    return BoltResponse(status=200, body={})


def _click_channel(body: dict[str, Any]) -> str | None:
    """The conversation a click came from; None for App Home (a view has no channel)."""
    container = body.get("container") or {}
    if container.get("type") == "view":
        return None
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    return str(channel) if channel else None


def register(app: AsyncApp, *, deps: Deps, plans: PlanSource, undelivered: Undelivered | None = None) -> None:
    """Attach every listener to `app`. The manifest test checks this list against app-manifest.yml."""
    undelivered = undelivered or Undelivered()
    app.middleware(only_our_workspace)

    # Users whose App Home this process has published: after a change to a run, the Home of those
    # the run concerns is published again, so it does not go stale until they reopen it.
    home_seen: set[str] = set()

    async def republish(run: str | None, client: Any, also: str | None = None) -> None:
        if run is None:
            return
        users = (await status.run_members(run, deps)) & home_seen
        for user in sorted(users | ({also} if also else set())):
            try:  # one user's Home failing must not leave the others stale
                view = replies.home_view(await dispatch(StatusFor(user=user), deps))
                await client.views_publish(user_id=user, view=view)
                home_seen.add(user)
            except Exception:
                log.exception("republishing the App Home of %s failed", user)

    def after(outcome: Outcome, client: Any, also: str | None = None) -> None:
        if outcome.ok or also:
            _later(republish(outcome.run, client, also))

    @app.command(SLASH_COMMAND)
    async def cutover(ack: Any, command: dict[str, Any], respond: Respond, client: Any) -> None:
        text = str(command.get("text", ""))
        try:
            parsed: Parsed = parse(text)
        except Usage as usage:
            await ack(**replies.usage(usage.line))
            return
        if parsed.name == "rollback":
            # A typed rollback only asks the room (a slip of the keyboard moves nothing); the
            # question's Confirm button moves the traffic, once.
            await ack()
            run = await status.run_in_channel(str(command.get("channel_id", "")), deps)
            if run is None:
                await respond(**replies.reply(Outcome.refused("No active cutover run in this channel.")))
                return
            scope: Literal["cohort", "all"] = "all" if parsed.scope == "all" else "cohort"
            asked = RequestRollback(
                run=run, user=str(command.get("user_id", "")), scope=scope, reason=redact(parsed.reason)
            )
            outcome = await _guarded(dispatch(asked, deps))
            await respond(**replies.reply(outcome))
            undelivered.acted(outcome.run, user=asked.user, response_url=command.get("response_url"))
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
        undelivered.acted(
            outcome.run, user=str(command.get("user_id", "")), response_url=command.get("response_url")
        )
        if parsed.name not in ("status", "packet", "ledger", "help"):
            after(outcome, client)

    clicks = _click_handlers(deps)

    async def on_click(ack: Any, body: dict[str, Any], respond: Respond, client: Any) -> None:
        await ack()
        user = str(body.get("user", {}).get("id", ""))
        from_home = (body.get("container") or {}).get("type") == "view"

        async def tell(outcome: Outcome) -> None:
            # Slack sends no response_url for a click on App Home: the answer goes by DM.
            answer = replies.reply(outcome)
            if body.get("response_url"):
                await respond(**answer)
            else:
                await client.chat_postMessage(channel=user, text=answer["text"])

        try:
            action = body["actions"][0]
            value = ButtonValue.decode(action["value"])
            action_id = ActionId(action["action_id"])
            handler = clicks[action_id]
        except (KeyError, IndexError, TypeError, ValueError):
            await tell(Outcome.refused(NOT_OURS))
            return
        refusal = await _elsewhere(body, value, action_id, user)
        if refusal is not None:
            await tell(refusal)
            return
        outcome = await _guarded(handler(value, user))
        await tell(outcome)
        undelivered.acted(outcome.run, user=user, response_url=body.get("response_url"))
        after(outcome, client, also=user if from_home else None)

    async def _elsewhere(
        body: dict[str, Any], value: ButtonValue, action_id: ActionId, user: str
    ) -> Outcome | None:
        """A refusal when the click comes from a channel that is not its run's war room.

        App Home (no channel) and the bot's DMs (the delta notices) are the person's own surfaces
        and count as the war room's; any other channel, and a run that is not there, do not."""
        channel = _click_channel(body)
        if channel is None or channel.startswith("D"):
            return None
        home = await status.run_channel(value.run, deps)
        if home is None or home == channel:
            return None  # an unknown run is the use case's to refuse
        log.info(M.LOG.click_elsewhere, action_id.value, value.run, channel, home)
        reason = M.CLICK_ELSEWHERE.format(run=value.run, run_channel=home, channel=channel)
        return await flow.refuse_on_run(
            value.run, user=user, action=f"{action_id.value} click", reason=reason, deps=deps
        )

    for action_id in ActionId:
        app.action(action_id.value)(on_click)
    # Any other action id (a button of an older version, another app's): a plain answer, not a 404.
    app.block_action(re.compile(".*"))(on_click)

    @app.event(EventName.MEMBER_JOINED_CHANNEL.value)
    async def joined(event: dict[str, Any], context: Any) -> None:
        # Someone else joining a war room changes nothing; the bot itself joining does.
        if event.get("user") != getattr(context, "bot_user_id", None):
            return
        channel = str(event.get("channel", ""))
        requeued = await rejoin.bot_joined(channel, deps)
        if requeued:
            log.info(M.LOG.rejoined, channel, requeued)

    @app.event(EventName.APP_HOME_OPENED.value)
    async def home(event: dict[str, Any], client: Any) -> None:
        if event.get("tab") not in (None, "home"):
            return
        user = str(event.get("user", ""))
        outcome = await dispatch(StatusFor(user=user), deps)
        await client.views_publish(user_id=user, view=replies.home_view(outcome))
        home_seen.add(user)


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
        # rb names the rollback request; its scope and reason are the ones the room was asked.
        if not value.rb:
            return Outcome.refused("That button names no rollback request.")
        command = Rollback(
            run=value.run, user=user, scope="cohort", reason="", version=value.v, request=value.rb
        )
        return await dispatch(command, deps)

    return {
        ActionId.SIGN_OFF: sign_off,
        ActionId.ADOPT_PACKET: adopt,
        ActionId.REJECT_PACKET: reject,
        ActionId.ACKNOWLEDGE_PACKET: acknowledge,
        ActionId.RELEASE_HOLD: release,
        ActionId.CONFIRM_ROLLBACK: confirm_rollback,
    }
