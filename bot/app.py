"""The Bolt `AsyncApp`: one shared Web API client, the signing secret, every listener.

`process_before_response=True`: Bolt returns once the listener has finished (its use case
committed, its answer posted to the request's `response_url`), so the intake (bot/intake.py)
knows when a request is processed. Slack does not wait for that: the intake hears the listener's
`ack()` as it is given (bot/server.py `bolt_dispatch`) and answers Slack with it at once.

Token verification: no `auth.test` at start. Bolt's single-workspace authorization calls
`auth.test` once, on the first request that needs it, and keeps the answer; a bot that refused to
start while Slack is unreachable would turn a Slack outage into a bot outage, and the outbox is
built to ride those out. A wrong token shows on that first request (Bolt logs it and answers the
person with its authorization error) and in every outbox row (`invalid_auth`, retried until an
operator fixes the token).
"""

from __future__ import annotations

from pathlib import Path

from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import listeners
from bot.intents import PlanSource
from bot.undelivered import Undelivered
from handlers.deps import Deps


def build_app(
    *,
    client: AsyncWebClient,
    signing_secret: str,
    deps: Deps,
    plans_dir: Path,
    undelivered: Undelivered | None = None,
) -> AsyncApp:
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        process_before_response=True,
    )
    listeners.register(app, deps=deps, plans=PlanSource(plans_dir), undelivered=undelivered)
    return app
