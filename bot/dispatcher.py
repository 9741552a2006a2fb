"""The outbox dispatcher: renders queued notifications and sends them to Slack, losing none.

Handlers write one outbox row per message in their own transaction; this sends them. Per row:
render the payload (bot/render.py), pick the Web API method from the kind's surface
(chat.postMessage for channels and DMs — a DM is `channel=<user id>`, no conversations.open —,
chat.update when the payload names a `target` message — or, for kinds that always update
(packet_superseded), the message `find_target` finds —, chat.postEphemeral, views.publish), call
it, and record the outcome:

- sent: `mark_sent` with Slack's `ts` and channel (a later chat.update needs both);
- HTTP 429: wait out `Retry-After` and try again. The wait is per Web API method (Slack's limits
  are per method), so one rate-limited method does not stop the others; a wait longer than
  `max_inline_wait` leaves the row pending until then instead of holding the drain. What the 429
  teaches (Retry-After, the rate Slack let through) is told to the `PacePort` (bot/pace.py), which
  every replica shares in production;
- HTTP 5xx, network errors, timeouts, Slack's own transient errors (`internal_error`, auth
  problems an operator can fix ...): retry with exponential backoff and jitter; after the last
  attempt of a round the row stays pending (`mark_retry` with a later `next_attempt_at`). Never
  dropped: Slack being down loses nothing;
- `invalid_blocks` / `msg_too_long` and friends: one more try with a compact rendering, then failed;
- Slack's other definitive answers (`channel_not_found`, `not_in_channel`, `message_not_found`
  ...): `mark_failed` with the error. Retrying would change nothing and would block the rows
  queued behind it for the same recipient.

Pace: Slack's limits are per app and method, whichever replica calls. A method with a known rate
(configured `rates`, or learned from a 429 by any replica) is paced by reservation: each call
first takes the method's next slot from the `PacePort` and waits for it, so N replicas together
stay under one rate. A method with no known rate goes unpaced, without a round trip per call; the
dispatcher asks the port what is known about it at most once a second.

Order: rows to the same recipient are sent one after another in claim order, and when one stays
pending the ones behind it wait with it, so a DM never shows v4's changes before v3's. Different
recipients go in parallel, at most `concurrency` requests in flight.

Delivery is at least once: a request Slack processed but whose answer was lost is sent again.

About slack_sdk's own retries: `AsyncWebClient` defaults to `async_default_handlers()`, which is a
single `AsyncConnectionErrorRetryHandler` (one immediate retry when the connection drops) and no
429 handling at all. `make_client` passes `retry_handlers=[]` so that every retry decision is made
here, once, with the backoff and the per-method waits above; the dispatcher refuses a client that
carries slack_sdk's `AsyncRateLimitErrorRetryHandler`, which would sleep inside a request.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks as B
from bot import messages as M
from bot import metrics
from bot.breaker import Breaker
from bot.ids import SURFACE, Surface
from bot.pace import Known, LocalPace, PacePort
from bot.render import RenderError, render, render_home
from packets.messages import MessageKind
from packets.witness import WitnessedHead, message_metadata

log = logging.getLogger("cutover_bot.dispatcher")

SLACK_API_URL = "https://slack.com/api/"

# Not a Web API method: the name the dispatcher paces and breaks the circuit on for a file upload.
UPLOAD = "files.upload_v2"
# Slack refusing the bot's token: transient for the queue (nothing is lost while someone fixes it),
# but a person must hear of it (bot.undelivered).
AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"})
# Slack's answers that another attempt may change: its own hiccups, and configuration an
# operator fixes (token, scopes) while the messages wait.
TRANSIENT_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "team_added_to_org",
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "no_permission",
        "accesslimited",
    }
)
# Answers about the message's size or shape: worth one try with a compact rendering.
SHRINKABLE_ERRORS = frozenset(
    {"invalid_blocks", "invalid_blocks_format", "msg_too_long", "msg_blocks_too_long"}
)


class OutboxRow(Protocol):
    """One queued message as the store hands it out."""

    @property
    def id(self) -> int: ...

    @property
    def kind(self) -> str: ...  # a MessageKind value

    @property
    def recipient(self) -> str: ...  # channel id, or user id for DMs, ephemerals and App Home

    @property
    def payload(self) -> Mapping[str, Any]: ...  # plain data for the kind's template

    @property
    def attempts(self) -> int: ...  # times claimed or tried so far: only grows the backoff


class OutboxPort(Protocol):
    """The outbox as the dispatcher needs it (store/ implements it)."""

    async def claim(self, *, now: datetime, limit: int) -> Sequence[OutboxRow]:
        """Pending rows due at `now` (next_attempt_at <= now), oldest first, taken so that no
        other dispatcher sends them meanwhile (`FOR UPDATE SKIP LOCKED` plus a lease; the store's
        `Outbox.claim` takes the lease length, which the wiring binds).

        Per recipient, only a prefix of its pending rows in id order: never a row while an
        earlier one for the same recipient is still pending and not yet due."""
        ...

    async def keep(self, row_ids: Sequence[int], /, *, now: datetime) -> set[int]:
        """Which of these claimed rows this dispatcher still holds, renewing leases about to end.

        Asked before each row is sent. A row not kept was claimed by another dispatcher after
        its lease passed, and so were (or will be) the ones behind it: the lane stops there."""
        ...

    async def mark_sent(self, row_id: int, /, *, ts: str | None, channel: str | None, at: datetime) -> object:
        """Delivered: record Slack's ts and channel (what a later chat.update of it needs)."""
        ...

    async def mark_retry(self, row_id: int, /, *, next_attempt_at: datetime, error: str) -> object:
        """Still pending, not to be claimed before `next_attempt_at`."""
        ...

    async def mark_failed(self, row_id: int, /, *, error: str) -> object:
        """Never to be sent: Slack refused it for good."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts_per_round: int = 4
    # Backoff between attempts inside a round: first_delay * 2^(n-1), capped, with equal jitter.
    first_delay: float = 0.5
    max_delay: float = 8.0
    # Backoff between rounds (next_attempt_at), from the row's attempt count.
    round_first_delay: float = 5.0
    round_max_delay: float = 300.0
    # A Retry-After longer than this leaves the row pending instead of sleeping in the drain.
    max_inline_wait: float = 10.0
    # 429s one row may wait out in one round before it is left pending.
    rate_limit_waits: int = 5
    # The circuit breaker (bot/breaker.py): this many transient failures (5xx, network) of one Web
    # API method in a row, across rows, and nobody calls it again until the next drain's probe.
    breaker_failures: int = 5

    # Past this many doublings every delay is at its cap anyway (and 2.0**1100 overflows).
    _MAX_DOUBLINGS = 30

    def backoff(self, attempt: int, rng: random.Random) -> float:
        doublings = min(max(attempt - 1, 0), self._MAX_DOUBLINGS)
        return _equal_jitter(self.first_delay * 2**doublings, self.max_delay, rng)

    def round_delay(self, attempts: int, rng: random.Random) -> float:
        doublings = min(max(attempts, 0), self._MAX_DOUBLINGS)
        return _equal_jitter(self.round_first_delay * 2**doublings, self.round_max_delay, rng)


def _equal_jitter(delay: float, cap: float, rng: random.Random) -> float:
    # Half fixed, half random: spreads retries of many rows without ever retrying at once.
    capped = min(delay, cap)
    return capped / 2 + rng.uniform(0, capped / 2)


@dataclass(slots=True)
class DrainReport:
    sent: int = 0
    retried: int = 0  # left pending after a round
    failed: int = 0
    deferred: int = 0  # left pending behind an earlier row for the same recipient
    handed_over: int = 0  # lanes left to another dispatcher that claimed them after a lease passed


@dataclass(frozen=True, slots=True)
class _Sent:
    ts: str | None
    channel: str | None
    method: str


@dataclass(frozen=True, slots=True)
class _Retry:
    after: float  # seconds
    error: str


@dataclass(frozen=True, slots=True)
class _Failed:
    error: str


_Outcome = _Sent | _Retry | _Failed


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    args: dict[str, Any]


# Where the message a chat.update row replaces was posted: {"channel": ..., "ts": ...} or None.
# For rows whose payload carries no `target` because the message's ts was not known when the
# row was queued (packet_superseded: v2 may still have been in the outbox).
FindTarget = Callable[[OutboxRow], Awaitable[Mapping[str, Any] | None]]


class OnFailed(Protocol):
    """Told when a row is given up for good, or when Slack refused the bot's token (the row waits
    in the queue for a token Slack takes): bot.undelivered tells the person who acted."""

    async def __call__(
        self, *, kind: str, recipient: str, payload: Mapping[str, Any], error: str
    ) -> None: ...


def make_client(*, token: str, base_url: str = SLACK_API_URL, timeout: int = 15) -> AsyncWebClient:
    """An AsyncWebClient with no retry handlers of its own (see the module docstring)."""
    return AsyncWebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(
        self,
        *,
        client: AsyncWebClient,
        outbox: OutboxPort,
        concurrency: int = 8,
        batch_size: int = 50,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        find_target: FindTarget | None = None,
        find_thread: FindTarget | None = None,
        rates: Mapping[str, float] | None = None,
        on_failed: OnFailed | None = None,
        pace: PacePort | None = None,
    ) -> None:
        if any(isinstance(h, AsyncRateLimitErrorRetryHandler) for h in client.retry_handlers):
            raise ValueError("the dispatcher owns 429 retries: build the client with make_client()")
        self._client = client
        self._outbox = outbox
        self._slots = asyncio.Semaphore(concurrency)
        self._batch_size = batch_size
        self._policy = policy or RetryPolicy()
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._monotonic = monotonic
        self._find_target = find_target
        self._find_thread = find_thread
        self._on_failed = on_failed
        # Per Web API method: the monotonic time before which Slack asked us not to call it.
        self._not_before: dict[str, float] = {}
        # Per method: when recent calls succeeded (what Slack let through before a 429).
        self._recent_ok: dict[str, collections.deque[float]] = {}
        # `rates` (calls per second per method) is what the operator knows the workspace allows:
        # a cap on the shared pace, for all replicas together. Without it the pace is learned
        # from the first 429 (of any replica).
        self._caps: dict[str, float] = {m: float(r) for m, r in (rates or {}).items() if r > 0}
        self._pace: PacePort = pace or LocalPace(monotonic=monotonic)
        # Methods with a learned rate, as last heard from the port: these are paced by reservation.
        self._learned: dict[str, float] = {}
        # Methods whose unpaced let-through this replica has reported: once per burst, not per 429.
        self._reported: set[str] = set()
        self._heard_at = -math.inf
        self._news_lock = asyncio.Lock()
        self._breaker = Breaker(self._policy.breaker_failures)
        self._wake = asyncio.Event()
        self._stopping = False
        self._stop_event = asyncio.Event()

    def stop_soon(self) -> None:
        """The replica is stopping: finish the requests in flight, hand every other row back to the
        queue (a row waiting out a 429 or the pace included), so stopping takes no longer than one
        request."""
        self._stopping = True
        self._stop_event.set()
        self._wake.set()

    async def _nap(self, seconds: float) -> None:
        """Sleep, cut short when the replica stops."""
        nap = asyncio.ensure_future(self._sleep(seconds))
        await _first_of_futures((nap, asyncio.ensure_future(self._stop_event.wait())))

    def nudge(self) -> None:
        """Something was committed to the outbox: send it now rather than at the next poll."""
        self._wake.set()

    async def drain(
        self, *, now_fn: Callable[[], datetime] = _utcnow, until_empty: bool = True
    ) -> DrainReport:
        """Send what is due. `until_empty`: claim again until nothing due is left."""
        report = DrainReport()
        self._breaker.new_round()
        while not self._stopping:
            rows = await self._outbox.claim(now=now_fn(), limit=self._batch_size)
            if not rows:
                break
            settled = report.sent + report.failed
            await self._send_batch(rows, now_fn, report)
            # A batch that settled nothing (Slack down, the breaker open) ends the drain: its rows
            # come due again soon, and claiming them over and over would be a busy loop.
            if not until_empty or report.sent + report.failed == settled:
                break
        return report

    async def run_forever(
        self, stop: asyncio.Event, *, now_fn: Callable[[], datetime] = _utcnow, poll_interval: float = 2.0
    ) -> None:
        """Drain, then sleep until nudged, stopped, or `poll_interval` passes (rows left pending
        become due with time, not with a nudge)."""
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.drain(now_fn=now_fn, until_empty=True)
            except Exception:
                # The database or the network may be away for a while: the next tick tries again.
                log.exception(M.LOG.drain_failed)
            await _first_of((self._wake, stop), timeout=poll_interval)

    # -- one batch ---------------------------------------------------------------------------

    async def _send_batch(
        self, rows: Sequence[OutboxRow], now_fn: Callable[[], datetime], report: DrainReport
    ) -> None:
        lanes: dict[str, list[OutboxRow]] = {}
        for row in rows:
            lanes.setdefault(row.recipient, []).append(row)
        # The first store error stops the whole batch: no lane posts another row it might not be
        # able to record (a row posted but not recorded goes again: a duplicate). What was in flight
        # when the store failed is the most that can be sent twice.
        store_down = asyncio.Event()
        results = await asyncio.gather(
            *(self._run_lane(lane, now_fn, report, store_down) for lane in lanes.values()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _run_lane(
        self,
        rows: list[OutboxRow],
        now_fn: Callable[[], datetime],
        report: DrainReport,
        store_down: asyncio.Event,
    ) -> None:
        try:
            await self._lane(rows, now_fn, report, store_down)
        except Exception:
            store_down.set()
            raise

    async def _lane(
        self,
        rows: list[OutboxRow],
        now_fn: Callable[[], datetime],
        report: DrainReport,
        store_down: asyncio.Event,
    ) -> None:
        for index, row in enumerate(rows):
            if store_down.is_set():
                return  # left claimed: the lease (or this replica's restart) hands them out again
            if self._stopping:
                # Claimed but not started: back to the queue now, for any replica (and in order).
                for later in rows[index:]:
                    await self._outbox.mark_retry(later.id, next_attempt_at=now_fn(), error=M.ERROR_STOPPING)
                return
            if row.id not in await self._outbox.keep([r.id for r in rows[index:]], now=now_fn()):
                log.warning(M.LOG.handed_over, row.id, row.recipient)
                report.handed_over += 1
                return
            outcome = await self._deliver(row, store_down)
            if outcome is None:
                return  # the store went away while this row queued for a request slot
            await self._record(row, outcome, now_fn, report)
            if isinstance(outcome, _Retry):
                next_attempt_at = now_fn() + timedelta(seconds=outcome.after)
                for later in rows[index + 1 :]:
                    await self._outbox.mark_retry(
                        later.id,
                        next_attempt_at=next_attempt_at,
                        error=M.ERROR_WAITING_BEHIND.format(row=row.id),
                    )
                    report.deferred += 1
                return

    async def _record(
        self, row: OutboxRow, outcome: _Outcome, now_fn: Callable[[], datetime], report: DrainReport
    ) -> None:
        if isinstance(outcome, _Sent):
            await self._outbox.mark_sent(row.id, ts=outcome.ts, channel=outcome.channel, at=now_fn())
            report.sent += 1
            metrics.OUTBOX_SENT.labels(kind=row.kind).inc()
            # Delivery is routine (the action it reports was logged when it happened).
            log.debug(M.LOG.sent, row.id, row.kind, row.recipient, outcome.method)
        elif isinstance(outcome, _Retry):
            next_attempt_at = now_fn() + timedelta(seconds=outcome.after)
            await self._outbox.mark_retry(row.id, next_attempt_at=next_attempt_at, error=outcome.error)
            report.retried += 1
            log.warning(M.LOG.retry, row.id, row.kind, next_attempt_at.isoformat(), outcome.error)
            if self._on_failed is not None and outcome.error.rsplit(": ", 1)[-1] in AUTH_ERRORS:
                await self._on_failed(
                    kind=row.kind, recipient=row.recipient, payload=row.payload, error=outcome.error
                )
        else:
            await self._outbox.mark_failed(row.id, error=outcome.error)
            report.failed += 1
            log.error(M.LOG.failed, row.id, row.kind, outcome.error)
            if self._on_failed is not None:
                await self._on_failed(
                    kind=row.kind, recipient=row.recipient, payload=row.payload, error=outcome.error
                )

    # -- one row -----------------------------------------------------------------------------

    async def _deliver(self, row: OutboxRow, store_down: asyncio.Event | None = None) -> _Outcome | None:
        """The row's outcome; None when the store failed before its request left (not posted)."""
        policy = self._policy
        compact = False
        attempts = 0
        rate_waits = 0
        target = row.payload.get("target")
        updates = _surface(row) is Surface.UPDATE or bool(row.payload.get("target_key"))
        if target is None and self._find_target is not None and updates:
            # Looked up only now: rows to one recipient go in order, so the message is posted by now.
            target = await self._find_target(row)
        thread = None
        if self._find_thread is not None and not updates:
            thread = await self._find_thread(row)
        while True:
            if self._stopping:
                return _Retry(after=0.0, error=M.ERROR_STOPPING)
            try:
                request = _request_for(row, compact=compact, target=target, thread=thread)
            except RenderError as exc:
                return _Failed(M.ERROR_RENDER.format(error=exc))
            wait = self._not_before.get(request.method, 0.0) - self._monotonic()
            if wait > policy.max_inline_wait:
                return _Retry(
                    after=wait, error=M.ERROR_RATE_LIMITED.format(method=request.method, seconds=wait)
                )
            if wait > 0:
                await self._nap(wait)
                if self._stopping:
                    continue
            paced_at: float | None = None
            try:
                async with self._slots:
                    if self._not_before.get(request.method, 0.0) > self._monotonic():
                        continue  # a 429 came back while this request queued for a slot
                    # A store error here raises PaceUnavailable, which none of the clauses below
                    # take for Slack's: the lane stops like on any store error, nothing was sent.
                    turn = await self._take_turn(request.method)
                    paced_at = turn.paced_at
                    if turn.too_long is not None:
                        return _Retry(
                            after=turn.too_long,
                            error=M.ERROR_RATE_LIMITED.format(method=request.method, seconds=turn.too_long),
                        )
                    if self._stopping or self._not_before.get(request.method, 0.0) > self._monotonic():
                        continue  # stopping, or a 429 came back while this one waited its turn
                    if not await self._breaker.admit(request.method):
                        return _Retry(
                            after=policy.round_delay(row.attempts, self._rng),
                            error=M.ERROR_BREAKER.format(method=request.method),
                        )
                    if store_down is not None and store_down.is_set():
                        self._breaker.abandon(request.method)
                        return None
                    response = await (
                        self._client.files_upload_v2(**request.args)
                        if request.method == UPLOAD
                        else self._client.api_call(request.method, json=request.args)
                    )
                self._succeeded(request.method)
                self._breaker.answered(request.method)
                return _sent(request, response.data if isinstance(response.data, dict) else {})
            except SlackApiError as exc:
                status, error, retry_after = _read_error(exc)
                # A proxy's page (no Slack error code) on a 2xx, a 5xx or a 408 may pass; an
                # answer from Slack itself is final unless it is one of the transient ones.
                transient = status >= 500 or status == 408 or (error is None and status < 400)
                if status == 429 or not (transient or error in TRANSIENT_ERRORS):
                    self._breaker.answered(request.method)  # Slack is there, whatever it said
                if status == 429:
                    await self._hold_method(request.method, retry_after, paced_at=paced_at)
                    rate_waits += 1
                    if rate_waits > policy.rate_limit_waits:
                        return _Retry(
                            after=retry_after,
                            error=M.ERROR_RATE_LIMITED.format(method=request.method, seconds=retry_after),
                        )
                    continue
                problem = (
                    M.ERROR_SLACK.format(method=request.method, error=error)
                    if error
                    else M.ERROR_HTTP.format(status=status, method=request.method)
                )
                if error in SHRINKABLE_ERRORS and not compact:
                    log.warning(M.LOG.compact_retry, row.id, row.kind, error)
                    compact = True
                    continue
                if not (transient or error in TRANSIENT_ERRORS):
                    return _Failed(problem)
                metrics.OUTBOX_RETRIES.labels(reason="5xx" if transient else "slack_error").inc()
            except (aiohttp.ClientError, TimeoutError, OSError, SlackClientError) as exc:
                problem = M.ERROR_NETWORK.format(method=request.method, error=type(exc).__name__)
                metrics.OUTBOX_RETRIES.labels(reason="network").inc()
            attempts += 1
            log.warning(M.LOG.transient, row.id, row.kind, attempts, problem)
            if self._breaker.failed(request.method):
                return _Retry(after=policy.round_delay(row.attempts, self._rng), error=problem)
            if attempts >= policy.attempts_per_round:
                return _Retry(after=policy.round_delay(row.attempts, self._rng), error=problem)
            await self._nap(policy.backoff(attempts, self._rng))

    async def _take_turn(self, method: str) -> _Turn:
        """This call's turn under the method's shared pace, waited for; at once when none is known."""
        cap = self._caps.get(method)
        if cap is None and method not in self._learned:
            await self._hear_news()
            if method not in self._learned:
                return _Turn(paced_at=None)  # nothing known: no round trip per call
        for chance in range(2):
            try:
                turn = await self._pace.reserve(method, cap=cap, within=self._policy.max_inline_wait)
            except Exception as exc:
                raise PaceUnavailable(method) from exc
            self._note(method, turn.rate)
            paced_at = _rate_in_force(turn.rate, cap)
            if not turn.taken:
                return _Turn(paced_at=paced_at, too_long=turn.wait)
            due = self._monotonic() + max(turn.wait, 0.0)  # a slot taken back after a lull is not late
            if turn.wait > 0:
                await self._nap(turn.wait)
            # Woken well after its slot (the loop was busy): the callers of the slots after it are
            # late too, and going now would land them on Slack together. Once, take a fresh slot.
            late = self._monotonic() - due
            if chance or paced_at is None or late <= max(0.5 / paced_at, _LATE) or self._stopping:
                break
        return _Turn(paced_at=paced_at)

    async def _hear_news(self) -> None:
        """What the other replicas learned (rates, Retry-After), asked at most once a second."""
        # Callers that arrive while the question is out wait for its answer: going ahead unpaced
        # meanwhile is the burst the question is there to prevent.
        async with self._news_lock:
            now = self._monotonic()
            if now - self._heard_at < _NEWS_EVERY:
                return
            try:
                known = await self._pace.known()
            except Exception as exc:
                raise PaceUnavailable("*") from exc
            self._heard_at = now
            for method, news in known.items():
                self._heard(method, news, now=now)

    def _heard(self, method: str, news: Known, *, now: float) -> None:
        """What the shared pace says of `method`: its rate, and a Retry-After still running."""
        self._note(method, news.rate)
        if news.wait > 0:
            self._hold_until(method, now + news.wait)

    def _hold_until(self, method: str, until: float) -> None:
        self._not_before[method] = max(self._not_before.get(method, 0.0), until)

    def _note(self, method: str, rate: float | None) -> None:
        metrics.SLACK_PACE_RATE.labels(method=method).set(rate or 0)
        if rate is None:
            # Never learned, or an operator deleted what was: the next 429 teaches it again.
            self._learned.pop(method, None)
            self._reported.discard(method)
        else:
            self._learned[method] = rate

    async def _hold_method(self, method: str, retry_after: float, *, paced_at: float | None) -> None:
        metrics.OUTBOX_RETRIES.labels(reason="429").inc()
        log.warning(M.LOG.rate_limited, method, retry_after)
        now = self._monotonic()
        self._hold_until(method, now + retry_after)
        # What Slack let through to this replica in the last second, for a call that was not paced:
        # reported once (the other requests of the same burst come back 429 too), and only when
        # it says something about the rate rather than about a burst.
        let_through = None
        if paced_at is None and method not in self._reported:
            seen = sum(1 for at in self._recent_ok.get(method, ()) if now - at <= 1.0)
            if seen >= _MIN_TO_LEARN:
                let_through = seen
                self._reported.add(method)
        try:
            news = await self._pace.learn(
                method, retry_after=retry_after, let_through=let_through, paced_at=paced_at
            )
        except Exception as exc:
            raise PaceUnavailable(method) from exc
        self._heard(method, news, now=now)

    def _succeeded(self, method: str) -> None:
        now = self._monotonic()
        recent = self._recent_ok.setdefault(method, collections.deque())
        recent.append(now)
        while recent and now - recent[0] > 1.0:
            recent.popleft()


class PaceUnavailable(Exception):
    """The shared pace could not be read or written (the store failed): the batch stops, as on any
    store error, before the call it was asked for leaves."""

    def __init__(self, method: str) -> None:
        super().__init__(M.ERROR_PACE_UNAVAILABLE.format(method=method))
        self.method = method


@dataclass(frozen=True, slots=True)
class _Turn:
    paced_at: float | None  # the rate this call was paced at; None: not paced
    too_long: float | None = None  # seconds: its turn was too far away, the row stays pending


def _rate_in_force(rate: float | None, cap: float | None) -> float | None:
    rates = [r for r in (rate, cap) if r is not None and r > 0]
    return min(rates) if rates else None


# Woken this much after its slot (or half an interval, if longer), a call takes a fresh slot.
_LATE = 0.01

# How often a replica asks what the others learned, about the methods it knows no rate for.
_NEWS_EVERY = 1.0

# Slack message metadata event type carrying the outbox row id.
IDEMPOTENCY_EVENT = "cutover_outbox_message"

# Successful calls in the second before a 429 needed to learn a pace from it.
_MIN_TO_LEARN = 5


def _surface(row: OutboxRow) -> Surface | None:
    try:
        return SURFACE[MessageKind(row.kind)]
    except ValueError:
        return None


def _row_metadata(row: OutboxRow) -> dict[str, Any]:
    return {"event_type": IDEMPOTENCY_EVENT, "event_payload": {"outbox_id": row.id}}


def _request_for(row: OutboxRow, *, compact: bool, target: Any, thread: Any = None) -> _Request:
    """The Web API call for one row; RenderError when the row cannot be rendered."""
    try:
        kind = MessageKind(row.kind)
    except ValueError as exc:
        raise RenderError(M.ERROR_UNKNOWN_KIND.format(kind=row.kind)) from exc
    payload = row.payload
    surface = SURFACE[kind]
    if surface is Surface.HOME:
        view = render_home(payload, limits=B.COMPACT if compact else B.HOME)
        return _Request("views.publish", {"user_id": row.recipient, "view": view})
    message = render(kind, payload, limits=B.COMPACT if compact else B.MESSAGE)
    if surface is Surface.FILE:
        # slack_sdk's files_upload_v2 makes the three calls (get the URL, upload, complete).
        shared = {"thread_ts": thread["ts"]} if isinstance(thread, Mapping) and thread.get("ts") else {}
        return _Request(
            UPLOAD,
            {
                "channel": row.recipient,
                "content": str(payload["content"]),
                "filename": str(payload["filename"]),
                "title": str(payload["title"]),
                "initial_comment": message.text,
                **shared,
            },
        )
    content = {"text": message.text, "blocks": message.blocks}
    # `target_key`: an answered copy of a message posted earlier, which it replaces in place.
    if surface is Surface.UPDATE or target is not None or payload.get("target_key"):
        if not (isinstance(target, Mapping) and target.get("channel") and target.get("ts")):
            raise RenderError(M.ERROR_MISSING_TARGET.format(kind=kind))
        # The update carries its row's id too: two updates saying the same are still two rows.
        return _Request(
            "chat.update",
            {"channel": target["channel"], "ts": target["ts"], "metadata": _row_metadata(row), **content},
        )
    if surface is Surface.EPHEMERAL:
        channel = payload.get("channel")
        if not channel:
            raise RenderError(M.ERROR_MISSING_CHANNEL.format(kind=kind))
        return _Request("chat.postEphemeral", {"channel": channel, "user": row.recipient, **content})
    # Channel messages and DMs alike: a user id as `channel` posts to the bot's DM with them.
    # The row's id travels as message metadata: the idempotency key by which a resend after a
    # crash (at least once) can be recognised in the channel's history.
    metadata = _row_metadata(row)
    if kind is MessageKind.LEDGER_HEAD:
        # The witness: the head is the metadata Slack keeps, with the row's id beside it.
        head = WitnessedHead(str(payload["run"]), int(payload["seq"]), str(payload["hash"]))
        witness = message_metadata(head)
        metadata = {**witness, "event_payload": {**witness["event_payload"], "outbox_id": row.id}}
    threaded: dict[str, Any] = {}
    if isinstance(thread, Mapping) and thread.get("ts") and thread.get("channel") == row.recipient:
        # One thread per run (bot.threads); what needs the whole room is shown in the channel too.
        threaded = {"thread_ts": thread["ts"], "reply_broadcast": bool(thread.get("broadcast"))}
    return _Request(
        "chat.postMessage",
        {
            "channel": row.recipient,
            "unfurl_links": False,
            "unfurl_media": False,
            "metadata": metadata,
            **threaded,
            **content,
        },
    )


def _sent(request: _Request, data: Mapping[str, Any]) -> _Sent:
    if request.method == "chat.postEphemeral":
        return _Sent(ts=data.get("message_ts"), channel=request.args["channel"], method=request.method)
    if request.method == "views.publish":
        return _Sent(ts=None, channel=None, method=request.method)
    return _Sent(
        ts=data.get("ts"), channel=data.get("channel") or request.args.get("channel"), method=request.method
    )


def _read_error(exc: SlackApiError) -> tuple[int, str | None, float]:
    """(HTTP status, Slack's error code or None, Retry-After seconds) from whatever came back.

    `exc.response` is usually an AsyncSlackResponse, but slack_sdk raises with the raw aiohttp
    response when a body is not JSON, and `data` is text or empty when a proxy answered."""
    response = exc.response
    status = getattr(response, "status_code", None) or getattr(response, "status", 0) or 0
    data = getattr(response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    headers = getattr(response, "headers", None) or {}
    retry_after = 1.0
    for name, value in headers.items():
        if str(name).lower() == "retry-after":
            try:
                retry_after = max(float(value), 0.0)
            except (TypeError, ValueError):
                retry_after = 1.0
    return int(status), (str(error) if error else None), retry_after


async def _first_of_futures(futures: Sequence[asyncio.Future[Any]]) -> None:
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in futures:
            future.cancel()
        await asyncio.gather(*futures, return_exceptions=True)


async def _first_of(events: Sequence[asyncio.Event], *, timeout: float) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
