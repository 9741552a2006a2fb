"""A local stand-in of the Slack Web API: a real aiohttp server on 127.0.0.1 that records calls.

Point an `AsyncWebClient(base_url=standin.base_url)` (or Bolt's) at it. It answers like Slack:
HTTP 200 with `{"ok": false, "error": ...}` for API errors, the same validation of auth, channels
and blocks (blocks through slack_sdk's Block Kit models), and `ts` values in Slack's format.
Faults can be programmed: `fail_next` (any HTTP status), `error_next` (a Slack error),
`rate_limit` (HTTP 429 with `Retry-After`), `down`/`up` (503 for everything, with an HTML body as
a load balancer would send), `slow`.

It also hosts `response_url` endpoints (`/response/<id>`), where Slack commands and interactions
post their ephemeral replies, and records what arrives there.

    async with SlackStandin() as slack:
        client = AsyncWebClient(token=slack.token, base_url=slack.base_url)
        ...
        assert slack.posted_to("C0WARROOM")
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import socket
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

DEFAULT_TOKEN = "xoxb-standin-0000-token"
TEAM_ID = "T0STANDIN"
BOT_USER_ID = "U0CUTOVERBOT"
BOT_ID = "B0CUTOVERBOT"
MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT = 40_000
_CONVERSATION_PREFIXES = ("C", "G", "D")
_USER_PREFIXES = ("U", "W")


@dataclass(frozen=True, slots=True)
class Call:
    """One request the stand-in received, and what it answered."""

    method: str
    token: str | None
    body: dict[str, Any]
    at: float  # time.monotonic() on arrival
    status: int
    response: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def answer(self) -> dict[str, Any]:
        """The JSON answer, or {} when the stand-in answered with an error page."""
        return self.response or {}

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response and self.response.get("ok"))


@dataclass(slots=True)
class SharedFile:
    """A file as the stand-in holds it: announced, uploaded, then shared in a channel."""

    id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str = ""
    channel: str | None = None
    thread_ts: str | None = None
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Posted:
    """A message as the stand-in holds it: updated in place by chat.update."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    # Message metadata (`event_type`, `event_payload`), as chat.postMessage / chat.update set it.
    metadata: dict[str, Any] | None = None
    # A reply in the thread of the message with this ts; `broadcast`: shown in the channel too.
    thread_ts: str | None = None
    broadcast: bool = False


@dataclass(slots=True)
class _Fault:
    status: int
    times: int
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    channel: str | None = None  # only calls for this channel


class SlackStandin:
    def __init__(
        self, *, tokens: Iterable[str] = (DEFAULT_TOKEN,), channels: Iterable[str] | None = None
    ) -> None:
        self.tokens = set(tokens)
        # None: any well-formed conversation id exists; otherwise only these (and any user id, for DMs).
        self.channels = set(channels) if channels is not None else None
        # The installation's Enterprise Grid org, as auth.test reports it (None: a plain workspace).
        self.enterprise_id: str | None = None
        self._calls: list[Call] = []
        self._messages: dict[tuple[str, str], Posted] = {}
        self._views: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._responses: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._faults: dict[str, deque[_Fault]] = defaultdict(deque)
        self._rates: dict[str, float] = {}
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._rejected: dict[str, str] = {}
        # Files: file id -> what files.getUploadURLExternal was told, the bytes uploaded, and where
        # files.completeUploadExternal shared it.
        self._files: dict[str, SharedFile] = {}
        self._down = False
        self._delay = 0.0
        # Posts to a response_url wait on this while answers are held (`hold_answers`).
        self._answers_open = asyncio.Event()
        self._answers_open.set()
        self.answers_waiting = 0
        self._in_flight = 0
        # The most API requests the stand-in was answering at once.
        self.max_in_flight = 0
        self._ts = itertools.count(1)
        self._response_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> SlackStandin:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/response/{id}", self._response_url)
        app.router.add_post("/upload/{id}", self._upload)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def open_connections(self) -> int:
        """Client connections still open; a killed client's close only after what it had sent."""
        server = self._runner.server if self._runner is not None else None
        return len(server.connections) if server is not None else 0

    async def __aenter__(self) -> SlackStandin:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def token(self) -> str:
        return next(iter(sorted(self.tokens)))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, response_id: str | None = None) -> str:
        """A fresh `response_url` on this server; what is posted there shows in `responses()`."""
        return f"http://127.0.0.1:{self.port}/response/{response_id or next(self._response_ids)}"

    # -- programmable faults -----------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        status: int = 503,
        times: int = 1,
        headers: dict[str, str] | None = None,
        channel: str | None = None,
    ) -> None:
        """The next `times` calls of `method` (or "*" for any), only those for `channel` when one
        is given, answer HTTP `status` and do nothing."""
        self._faults[method].append(
            _Fault(status=status, times=times, headers=dict(headers or {}), channel=channel)
        )

    def error_next(self, method: str, error: str, *, times: int = 1, channel: str | None = None) -> None:
        """The next `times` calls of `method` answer HTTP 200 `{"ok": false, "error": error}`."""
        self._faults[method].append(_Fault(status=200, times=times, error=error, channel=channel))

    def clear_faults(self) -> None:
        """Forget every programmed fault and rate limit (not `down`, not `slow`)."""
        self._faults.clear()
        self._rates.clear()

    def rate_limit(self, method: str, *, per_second: float) -> None:
        """Beyond `per_second` calls of `method` in any one second: HTTP 429 with `Retry-After`."""
        self._rates[method] = per_second

    def reject_channel(self, channel: str, error: str = "channel_not_found") -> None:
        """Posting to `channel` answers `error` (e.g. not_in_channel, is_archived)."""
        self._rejected[channel] = error

    def accept_channel(self, channel: str) -> None:
        """Posting to `channel` works again (the bot was invited)."""
        self._rejected.pop(channel, None)

    def down(self) -> None:
        self._down = True

    def up(self) -> None:
        self._down = False

    def hold_answers(self) -> None:
        """Posts to a response_url wait, unanswered and not yet in `responses()`, until
        `release_answers`: the bot's work after the ack is still going on. `answers_waiting` counts
        them."""
        self._answers_open.clear()

    def release_answers(self) -> None:
        self._answers_open.set()

    def slow(self, seconds: float) -> None:
        """Wait this long before answering every request (0 to stop)."""
        self._delay = seconds

    # -- what happened -----------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[Call]:
        return [c for c in self._calls if method is None or c.method == method]

    def posted_to(self, channel_or_user: str) -> list[Call]:
        """Successful chat.postMessage calls whose `channel` was this channel or user id."""
        return [
            c for c in self.calls("chat.postMessage") if c.ok and c.body.get("channel") == channel_or_user
        ]

    def message(self, channel: str, ts: str) -> Posted:
        return self._messages[(channel, ts)]

    def messages(self, channel: str) -> list[Posted]:
        return [m for (ch, _), m in self._messages.items() if ch == channel]

    def views(self, user: str) -> list[dict[str, Any]]:
        """Every view published to this user's App Home, oldest first."""
        return list(self._views[user])

    def responses(self, response_id: str | None = None) -> list[dict[str, Any]]:
        if response_id is not None:
            return list(self._responses[response_id])
        return [r for replies in self._responses.values() for r in replies]

    # -- the server --------------------------------------------------------------------------

    async def _response_url(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        if not self._answers_open.is_set():
            self.answers_waiting += 1
            try:
                await self._answers_open.wait()
            finally:
                self.answers_waiting -= 1
        self._responses[request.match_info["id"]].append(body)
        return web.json_response({"ok": True})

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        arrived = time.monotonic()
        body = await _parse_body(request)
        token = _token(request, body)
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self._delay:
                await asyncio.sleep(self._delay)
            status, answer, headers = self._answer(method, token, body, arrived)
        finally:
            self._in_flight -= 1
        self._calls.append(
            Call(
                method=method,
                token=token,
                body=body,
                at=arrived,
                status=status,
                response=answer,
                headers=headers,
            )
        )
        if answer is None:
            return web.Response(
                status=status,
                text="<html><body>upstream unavailable</body></html>",
                content_type="text/html",
                headers=headers,
            )
        return web.json_response(answer, status=status, headers=headers)

    def _answer(
        self, method: str, token: str | None, body: dict[str, Any], arrived: float
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        if self._down:
            return 503, None, {}
        fault = self._take_fault(method, body)
        if fault is not None:
            if fault.error is not None:
                return fault.status, {"ok": False, "error": fault.error}, fault.headers
            if fault.status == 429:
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1", **fault.headers}
            return fault.status, None, fault.headers
        retry_after = self._over_rate(method, arrived)
        if retry_after is not None:
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
        if method == "api.test":
            return 200, {"ok": True, "args": body}, {}
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if token not in self.tokens:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        handler = _HANDLERS.get(method)
        answer = handler(self, body) if handler else {"ok": True}
        return 200, answer, {}

    def _take_fault(self, method: str, body: dict[str, Any]) -> _Fault | None:
        for key in (method, "*"):
            for fault in self._faults.get(key, ()):
                if fault.channel is not None and fault.channel != body.get("channel"):
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self._faults[key].remove(fault)
                return fault
        return None

    def _over_rate(self, method: str, arrived: float) -> int | None:
        per_second = self._rates.get(method)
        if per_second is None:
            return None
        recent = self._recent[method]
        while recent and arrived - recent[0] >= 1.0:
            recent.popleft()
        if len(recent) >= per_second:
            # Slack sends whole seconds; a client that waits this long finds a free slot.
            return max(1, math.ceil(1.0 - (arrived - recent[0])))
        recent.append(arrived)
        return None

    # -- methods -----------------------------------------------------------------------------

    def _next_ts(self) -> str:
        n = next(self._ts)
        return f"{1_700_000_000 + n // 10_000}.{(n % 10_000) * 100:06d}"

    def _conversation_error(self, channel: Any) -> str | None:
        if not isinstance(channel, str) or not channel:
            return "channel_not_found"
        if channel in self._rejected:
            return self._rejected[channel]
        if channel.startswith(_USER_PREFIXES):
            return None  # a DM: Slack opens the bot's IM with that user
        if not channel.startswith(_CONVERSATION_PREFIXES):
            return "channel_not_found"
        if self.channels is not None and channel not in self.channels:
            return "channel_not_found"
        return None

    def _content_error(self, body: dict[str, Any], *, max_blocks: int = MAX_BLOCKS) -> str | None:
        text = body.get("text")
        blocks = body.get("blocks")
        if not text and not blocks:
            return "no_text"
        if isinstance(text, str) and len(text) > MAX_TEXT:
            return "msg_too_long"
        if blocks is not None:
            return _blocks_error(blocks, max_blocks=max_blocks)
        return None

    def _post_message(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = body.get("channel")
        error = self._conversation_error(channel) or self._content_error(body)
        if error:
            return {"ok": False, "error": error}
        # A post to a user id lands in the bot's DM with them, answered with the DM's id.
        where = "D" + str(channel)[1:] if str(channel).startswith(_USER_PREFIXES) else str(channel)
        message = self._store(where, self._next_ts(), body)
        return {"ok": True, "channel": where, "ts": message.ts, "message": _message_json(message)}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, ts = body.get("channel"), body.get("ts")
        error = self._conversation_error(channel) or self._content_error(body)
        if error:
            return {"ok": False, "error": error}
        if (channel, ts) not in self._messages:
            return {"ok": False, "error": "message_not_found"}
        message = self._store(str(channel), str(ts), body)
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": message.text,
            "message": _message_json(message),
        }

    def _post_ephemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        error = self._conversation_error(body.get("channel")) or self._content_error(body)
        if error:
            return {"ok": False, "error": error}
        user = body.get("user")
        if not isinstance(user, str) or not user.startswith(_USER_PREFIXES):
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _publish_view(self, body: dict[str, Any]) -> dict[str, Any]:
        user = body.get("user_id")
        if not isinstance(user, str) or not user.startswith(_USER_PREFIXES):
            return {"ok": False, "error": "user_not_found"}
        view = _json_field(body.get("view"))
        if not isinstance(view, dict) or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        error = _blocks_error(view.get("blocks") or [], max_blocks=MAX_VIEW_BLOCKS)
        if error:
            return {"ok": False, "error": error}
        self._views[user].append(view)
        return {"ok": True, "view": {"id": f"V{len(self._views[user]):08d}", "team_id": TEAM_ID, **view}}

    def _upload_url(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            length = int(body.get("length", -1))
        except (TypeError, ValueError):
            length = -1
        if not body.get("filename") or length < 0:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{len(self._files) + 1:08d}"
        self._files[file_id] = SharedFile(id=file_id, filename=str(body["filename"]), length=length)
        return {
            "ok": True,
            "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}",
            "file_id": file_id,
        }

    async def _upload(self, request: web.Request) -> web.Response:
        found = self._files.get(request.match_info["id"])
        if found is None:
            return web.Response(status=404, text="no such upload")
        found.data = await request.read()
        return web.Response(status=200, text=f"OK - {len(found.data)}")

    def _complete_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        listed = _json_field(body.get("files"))
        if not isinstance(listed, list) or not listed:
            return {"ok": False, "error": "invalid_arguments"}
        if str(body.get("channel_id")) in self._rejected:
            return {"ok": False, "error": self._rejected[str(body.get("channel_id"))]}
        done = []
        for item in listed:
            found = self._files.get(str(item.get("id"))) if isinstance(item, dict) else None
            if found is None or found.data is None:
                return {"ok": False, "error": "file_not_found"}
            found.title = str(item.get("title") or found.filename)
            found.channel = str(body.get("channel_id") or "") or None
            found.thread_ts = str(body.get("thread_ts") or "") or None
            found.comment = str(body.get("initial_comment") or "")
            done.append({"id": found.id, "name": found.filename, "title": found.title})
        return {"ok": True, "files": done}

    def files(self, channel: str | None = None) -> list[SharedFile]:
        """The files shared (uploaded and completed), in `channel` if given."""
        shared = [f for f in self._files.values() if f.channel is not None]
        return [f for f in shared if channel is None or f.channel == channel]

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://standin.slack.test/",
            "team": "Stand-in",
            "user": "cutover-bot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "enterprise_id": self.enterprise_id,
            "is_enterprise_install": False,
        }

    def _open_conversation(self, body: dict[str, Any]) -> dict[str, Any]:
        users = str(body.get("users") or "")
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        first = users.split(",")[0]
        return {"ok": True, "channel": {"id": "D" + first[1:]}}

    def _user_info(self, body: dict[str, Any]) -> dict[str, Any]:
        user = body.get("user")
        if not isinstance(user, str) or not user.startswith(_USER_PREFIXES):
            return {"ok": False, "error": "user_not_found"}
        return {
            "ok": True,
            "user": {
                "id": user,
                "team_id": TEAM_ID,
                "name": user.lower(),
                "real_name": user,
                "tz": "America/New_York",
                "deleted": False,
                "is_bot": False,
            },
        }

    def _history(self, body: dict[str, Any]) -> dict[str, Any]:
        """conversations.history: newest first, `limit` per page, `cursor` to go on; metadata only
        with `include_all_metadata`, as Slack answers."""
        channel = body.get("channel")
        error = self._conversation_error(channel)
        if error:
            return {"ok": False, "error": error}
        newest_first = sorted(
            (m for (c, _), m in self._messages.items() if c == channel),
            key=lambda m: float(m.ts),
            reverse=True,
        )
        start = int(body.get("cursor") or 0)
        limit = int(body.get("limit") or 100)
        page = newest_first[start : start + limit]
        with_metadata = str(body.get("include_all_metadata", "")).lower() in ("true", "1")
        messages = []
        for message in page:
            shown = _message_json(message)
            if with_metadata and message.metadata is not None:
                shown["metadata"] = message.metadata
            messages.append(shown)
        more = start + limit < len(newest_first)
        return {
            "ok": True,
            "messages": messages,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _store(self, channel: str, ts: str, body: dict[str, Any]) -> Posted:
        blocks = _json_field(body.get("blocks")) or []
        metadata = _json_field(body.get("metadata"))
        if metadata is None and (channel, ts) in self._messages:
            metadata = self._messages[(channel, ts)].metadata  # chat.update without metadata keeps it
        earlier = self._messages.get((channel, ts))
        thread_ts = body.get("thread_ts") or (earlier.thread_ts if earlier else None)
        broadcast = body.get("reply_broadcast") in (True, "true") or bool(earlier and earlier.broadcast)
        message = Posted(
            channel=channel,
            ts=ts,
            text=str(body.get("text") or ""),
            blocks=list(blocks),
            metadata=metadata if isinstance(metadata, dict) else None,
            thread_ts=str(thread_ts) if thread_ts else None,
            broadcast=broadcast,
        )
        self._messages[(channel, ts)] = message
        return message


_HANDLERS = {
    "chat.postMessage": SlackStandin._post_message,
    "chat.update": SlackStandin._update,
    "chat.postEphemeral": SlackStandin._post_ephemeral,
    "views.publish": SlackStandin._publish_view,
    "auth.test": SlackStandin._auth_test,
    "files.getUploadURLExternal": SlackStandin._upload_url,
    "files.completeUploadExternal": SlackStandin._complete_upload,
    "conversations.open": SlackStandin._open_conversation,
    "conversations.history": SlackStandin._history,
    "users.info": SlackStandin._user_info,
}


async def _parse_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    body: dict[str, Any] = dict(request.query)
    if not raw:
        return body
    if request.content_type == "application/json":
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            return {**body, "_invalid_json": raw.decode(errors="replace")}
        return {**body, **parsed} if isinstance(parsed, dict) else body
    # Form bodies carry structured arguments (blocks, view) as JSON strings, as Slack documents.
    body.update(dict(parse_qsl(raw.decode(), keep_blank_values=True)))
    for key in ("blocks", "view", "attachments", "metadata"):
        if isinstance(body.get(key), str):
            body[key] = _json_field(body[key])
    return body


def _token(request: web.Request, body: dict[str, Any]) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :].strip() or None
    token = body.get("token")
    return token if isinstance(token, str) and token else None


def _json_field(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return value


def _blocks_error(blocks: Any, *, max_blocks: int) -> str | None:
    if not isinstance(blocks, list):
        return "invalid_blocks_format"
    if len(blocks) > max_blocks:
        return "invalid_blocks"
    for raw in blocks:
        if not isinstance(raw, dict):
            return "invalid_blocks_format"
        try:
            block = Block.parse(raw)
            if block is None:
                return "invalid_blocks"
            block.to_dict()
        except (SlackObjectFormationError, TypeError, ValueError, KeyError):
            return "invalid_blocks"
    return None


def _message_json(message: Posted) -> dict[str, Any]:
    return {
        "type": "message",
        "subtype": "bot_message",
        "text": message.text,
        "ts": message.ts,
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "blocks": message.blocks,
    }
