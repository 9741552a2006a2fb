"""Slack refusing a run's messages for good (bot not in the channel, channel gone or archived), or
refusing the bot's token (the messages wait in the queue): told to the person who acted, logged
once.

The outbox sends after the use case has answered, so the answer to the person cannot say it. The
listeners note, per run, the last request's `response_url` (valid for 30 minutes, five posts);
when the dispatcher marks a run's message failed with one of `TOLD`, that person gets an
ephemeral line there saying what Slack answered and what to do, once per run, channel and error,
and the log gets one WARNING for it (later failures of the same kind are DEBUG).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.dispatcher import AUTH_ERRORS

log = logging.getLogger("cutover_bot.undelivered")

TOLD: Final = frozenset({"not_in_channel", "channel_not_found", "is_archived"})
WHAT_TO_DO: Final[dict[str, str]] = {
    "not_in_channel": "invite the bot to <#{channel}> (`/invite @cutover-bot`)",
    "channel_not_found": "check that <#{channel}> exists and the bot may see it",
    "is_archived": "unarchive <#{channel}> or move the run to a live channel",
}
TOLD_TEXT: Final = (
    ":warning: Slack refused the bot's {kind} message for run {run} in <#{channel}>: `{error}`. "
    "The room did not see it; {what}."
)
TOKEN_TEXT: Final = (
    ":warning: Slack refused the bot's token (`{error}`) while sending run {run}'s messages. "
    "Nobody has seen them yet; they wait in the queue and go once the app is reinstalled or the "
    "bot runs with a valid `SLACK_BOT_TOKEN`."
)
LOGGED: Final = "Slack refused run %s's %s message to %s: %s (told %s)"


class Undelivered:
    def __init__(self) -> None:
        self._last: dict[str, tuple[str, str]] = {}  # run -> (user, response_url)
        self._seen: set[tuple[str, str, str]] = set()

    def acted(self, run: str | None, *, user: str, response_url: str | None) -> None:
        """`user` just acted on `run` from a request that can still be answered at `response_url`."""
        if run and response_url:
            self._last[run] = (user, response_url)

    async def failed(self, *, kind: str, recipient: str, payload: Mapping[str, Any], error: str) -> None:
        """The dispatcher gave up on one outbox row with `error` (its text ends with Slack's code)."""
        code = error.rsplit(": ", 1)[-1].strip()
        run = payload.get("run")
        if code not in TOLD | AUTH_ERRORS or not isinstance(run, str):
            return
        # A refused token refuses every recipient (its messages all wait in the queue): told once
        # per run, not once per DM.
        key = (run, "" if code in AUTH_ERRORS else recipient, code)
        if key in self._seen:
            log.debug(LOGGED, run, kind, recipient, code, "before")
            return
        self._seen.add(key)
        user, url = self._last.get(run, ("nobody", ""))
        log.warning(LOGGED, run, kind, recipient, code, user)
        if not url:
            return
        text = (
            TOKEN_TEXT.format(error=code, run=run)
            if code in AUTH_ERRORS
            else TOLD_TEXT.format(
                kind=kind.replace("_", " "),
                run=run,
                channel=recipient,
                error=code,
                what=WHAT_TO_DO[code].format(channel=recipient),
            )
        )
        try:
            await AsyncWebhookClient(url).send(text=text, response_type="ephemeral", replace_original=False)
        except Exception:
            log.exception("telling %s about run %s's undelivered message failed", user, run)
