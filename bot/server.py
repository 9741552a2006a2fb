"""The HTTP face of the bot: `POST /slack/events`, `GET /healthz`, `GET /metrics`, and
`POST /alertmanager` (bot/alertmanager.py).

Requests are checked before Bolt sees them, in this order: the signature (401 when missing,
wrong or older than five minutes, and nothing happens), then the body's shape (400 for bad form
encoding or a `payload=` that is not JSON). Bolt verifies the signature again; that costs
microseconds and keeps its own guarantees intact.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, parse_qsl

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier

from bot import intake as intake_module
from bot import metrics
from bot.intake import Dispatch, Intake, OnAck
from bot.messages import LOG

log = logging.getLogger("cutover_bot.server")


def _malformed(body: str, content_type: str) -> str | None:
    """Why the body cannot be a Slack request, or None when it can."""
    if content_type.startswith("application/json"):
        try:
            value = json.loads(body)
        except ValueError:
            return "body is not JSON"
        return None if isinstance(value, dict) else "body is not a JSON object"
    try:
        form = parse_qs(body, keep_blank_values=True, strict_parsing=bool(body))
    except ValueError:
        return "body is not form encoded"
    if "payload" in form:
        try:
            payload = json.loads(form["payload"][0])
        except ValueError:
            return "payload is not JSON"
        if not isinstance(payload, dict):
            return "payload is not a JSON object"
        return _payload_problem(payload)
    return None


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _payload_problem(payload: dict[str, Any]) -> str | None:
    """Why an interaction payload cannot be read, or None. Unknown kinds pass (and are ignored).

    Bolt's matchers index straight into these parts, so a payload without them would end in a 500.
    """
    kind = payload.get("type")
    if not _is_text(kind):
        return "payload has no type"
    user = payload.get("user")
    if user is not None and not (isinstance(user, dict) and _is_text(user.get("id"))):
        return "payload user has no id"
    if kind == "block_actions":
        actions = payload.get("actions")
        if not (isinstance(actions, list) and actions):
            return "block_actions payload has no actions"
        if not all(isinstance(action, dict) and _is_text(action.get("action_id")) for action in actions):
            return "block_actions payload has an action without an action_id"
    elif kind in ("view_submission", "view_closed"):
        view = payload.get("view")
        if not (isinstance(view, dict) and _is_text(view.get("type"))):
            return f"{kind} payload has no view with a type"
    elif kind == "block_suggestion" and not _is_text(payload.get("action_id")):
        return "block_suggestion payload has no action_id"
    elif kind in ("shortcut", "message_action", "interactive_message") and not _is_text(
        payload.get("callback_id")
    ):
        return f"{kind} payload has no callback_id"
    return None


def build_web_app(
    bolt: AsyncApp,
    *,
    signing_secret: str,
    health: Callable[[], Awaitable[bool]] | None = None,
    intake: Intake | None = None,
    scrape: Callable[[], Awaitable[None]] | None = None,
    alertmanager: Callable[[web.Request], Awaitable[web.Response]] | None = None,
) -> web.Application:
    # Without a secret (Socket Mode) every request here is refused: an HMAC keyed with nothing is
    # one anyone can compute (slack_sdk's verifier refuses an empty secret outright).
    verifier = SignatureVerifier(signing_secret=signing_secret) if signing_secret.strip() else None

    async def events(request: web.Request) -> web.Response:
        started = time.perf_counter()
        raw = await request.read()
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            body = None
        if body is None or verifier is None or not verifier.is_valid_request(body, dict(request.headers)):
            metrics.REQUESTS.labels(outcome="unauthorized").inc()
            return web.json_response({"error": "invalid signature"}, status=401)
        problem = _malformed(body, request.headers.get("Content-Type", ""))
        if problem is not None:
            metrics.REQUESTS.labels(outcome="malformed").inc()
            log.info(LOG.malformed_request, problem)
            return web.json_response({"error": problem}, status=400)
        if intake is not None and intake_module.takes(body, request.headers.get("Content-Type", "")):
            # Durable before the ack: written to the inbox, then processed (bot/intake.py).
            try:
                response = await intake.handle(body, dict(request.headers), arrived=time.time())
            except Exception:  # the database is away: Slack hears 500 and the person sees an error
                log.exception(LOG.dispatch_failed)
                metrics.REQUESTS.labels(outcome="error").inc()
                return web.json_response({"error": "internal error"}, status=500)
            metrics.REQUESTS.labels(outcome=str(response.status)).inc()
            metrics.ACK_SECONDS.observe(time.perf_counter() - started)
            return response
        try:
            bolt_response = await bolt.async_dispatch(await to_bolt_request_from(request, body))
        except Exception:  # the one error boundary: Slack gets a 500 without a trace
            log.exception(LOG.dispatch_failed)
            metrics.REQUESTS.labels(outcome="error").inc()
            return web.json_response({"error": "internal error"}, status=500)
        metrics.REQUESTS.labels(outcome=str(bolt_response.status)).inc()
        metrics.ACK_SECONDS.observe(time.perf_counter() - started)
        if bolt_response.status == 404:
            # A well-formed request no listener takes (a kind of interaction this bot does not
            # offer): acknowledged and ignored, so Slack shows the person no error.
            log.info(LOG.unhandled_request)
            return web.json_response({}, status=200)
        return await to_aiohttp_response(bolt_response)

    async def healthz(_request: web.Request) -> web.Response:
        ok = True if health is None else await health()
        return web.json_response({"ok": ok}, status=200 if ok else 503)

    async def metrics_view(_request: web.Request) -> web.Response:
        if scrape is not None:
            await scrape()  # gauges read from the database now, not at the last resync
        return web.Response(
            body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application(client_max_size=1024 * 1024)
    app.add_routes(
        [web.post("/slack/events", events), web.get("/healthz", healthz), web.get("/metrics", metrics_view)]
    )
    if alertmanager is not None:
        # Prometheus Alertmanager's webhook (bot/alertmanager.py): its own bearer token, not Slack's.
        app.add_routes([web.post("/alertmanager", alertmanager)])
    return app


async def to_bolt_request_from(request: web.Request, body: str) -> AsyncBoltRequest:
    """Bolt's own adapter reads the body again; hand it the text we already have.

    Bolt decides "this is an interaction" by looking for the substring `payload` anywhere in a
    form body, so `/cutover hold payload service slow` would parse as an empty request and be
    dropped with a 404. When the form has no `payload` field, the body is parsed as the plain
    form it is (the raw text, which the signature covers, is left untouched).
    """
    bolt_request = AsyncBoltRequest(body=body, query=request.query_string, headers=dict(request.headers))
    if "payload" in body and not request.headers.get("Content-Type", "").startswith("application/json"):
        form = dict(parse_qsl(body, keep_blank_values=True))
        if "payload" not in form:
            bolt_request.body = form
            bolt_request.context = build_async_context(AsyncBoltContext({}), form)
    return bolt_request


class _HeardAck(AsyncAck):
    """Bolt's `ack`, which also tells the intake what the listener acked, the moment it acks."""

    def __init__(self, heard: OnAck) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Bolt's, without annotations
        self._heard = heard

    async def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        response = await super().__call__(*args, **kwargs)
        await self._heard(response)
        return response


def bolt_dispatch(bolt: AsyncApp) -> Dispatch:
    """Bolt's dispatch of a stored request (the intake's `Dispatch`): body and headers, and what
    to call when the listener acks."""

    async def dispatch(body: str, headers: dict[str, str], on_ack: OnAck) -> BoltResponse:
        as_bolt_wants: dict[str, str | Sequence[str]] = dict(headers)
        bolt_request = AsyncBoltRequest(body=body, headers=as_bolt_wants)
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        _plain_form_unless_payload(bolt_request, body, content_type)
        bolt_request.context["ack"] = _HeardAck(on_ack)
        return await bolt.async_dispatch(bolt_request)

    return dispatch


def _plain_form_unless_payload(bolt_request: AsyncBoltRequest, body: str, content_type: str) -> None:
    # See to_bolt_request_from: a command whose text says "payload" is still a command.
    if "payload" in body and not content_type.startswith("application/json"):
        form = dict(parse_qsl(body, keep_blank_values=True))
        if "payload" not in form:
            bolt_request.body = form
            bolt_request.context = build_async_context(AsyncBoltContext({}), form)
