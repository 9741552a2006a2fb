"""Durable intake: a slash command, a click or an event is in the database before Slack hears 200.

The ack path (`Intake.handle`, called by bot/server.py once the signature and the body's shape
are checked): write the request to the inbox (store/inbox.py), claimed by this replica, commit;
then process it at once, and answer Slack with whichever comes first:

- the listener's ack, the moment the listener gives it (`ack()`: an empty 200, or a usage line in
  its body); the work after it goes on and its answer goes to the request's response_url;
- the end of processing, when nothing acked before it (another workspace's request refused by
  middleware in its own response, a request no listener takes, an event: with
  `process_before_response` Bolt acks an event only after its listener);
- `deadline` (well under Slack's 3 s): an empty 200, the processing going on.

Why the ack itself and not "200 at once when the ack would be empty anyway": which acks carry a
body (a usage line, another workspace's refusal) is the listeners' and middleware's knowledge;
hearing the ack as it is given keeps it there, in one place, and a listener that starts answering
in its ack needs no change here. The inbox row is committed before, so Slack's 200 is durable.

At most `concurrency` requests are worked on at once (a processing slot each). A request takes
its slot when its listener acks, after Slack's answer is on its way, so a full house of slow use
cases never holds back an ack: the listener waits inside `ack()` for a free slot. An event, whose
listener runs before Bolt's ack, takes its slot before it is handed to Bolt.

Processed once:

- the inbox row's key is the sha256 of the signed body: Slack's retries (`X-Slack-Retry-Num`, a
  new signature over the same body, which carries its own trigger_id or event_id) and a replayed
  identical request (same signature, inside the five minutes the signature check allows) find the
  row there and are answered 200 with nothing done;
- the use case's first committing transaction marks the row done in that same transaction
  (`store.inbox.CURRENT`, read by `UnitOfWork`), so work and "processed" commit together.

Any replica processes what another left: every replica polls the inbox (`run_forever`) and
claims due rows with `FOR UPDATE SKIP LOCKED` on PostgreSQL. A claim is a lease renewed while the
row is processed; a replica that dies leaves its rows to the others once the lease passes, and
a replica restarting under the same identity (`CUTOVER_REPLICA_ID`, else host name and pid, which
is stable for a container's pid 1) takes its own rows back at once. A row that fails is retried
with backoff, up to `MAX_ATTEMPTS` times.

A row processed later than its arrival is handed to Bolt re-signed with the signing secret and
the current time: its signature was checked on arrival, and Bolt would refuse one older than five
minutes.

Stopping (`stop`): no new rows are claimed nor requests taken (503); what is being processed
gets `grace` seconds to finish, a listener still waiting for its slot included; what is still
running then is cancelled between two transactions (`UnitOfWork.cancel_between_transactions`)
and released to the other replicas at once, as are the requests queued for a slot and a request
whose row was being written when the stop began (answered 200).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, parse_qsl, urlencode

from aiohttp import web
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier

from bot import metrics
from bot.group_commit import GroupCommit
from packets.redact import redact, redact_data
from store.inbox import CURRENT, Arriving, Claim, ClaimLost
from store.uow import UnitOfWork

log = logging.getLogger("cutover_bot.intake")

# Called with what the listener acked, when it acks (bot/server.py `bolt_dispatch`).
OnAck = Callable[[BoltResponse], Awaitable[None]]
# Handed to Bolt: the (re-signed) body and headers of one stored request, and its OnAck.
Dispatch = Callable[[str, dict[str, str], OnAck], Awaitable[BoltResponse]]

MAX_ATTEMPTS = 5
# Requests acked and waiting for a processing slot in the middle of their listener, per slot. Past
# that, a request's listener is unwound the moment it acks and the request waits as its row id,
# body and headers (`_queued`) until a slot frees: under a burst of a thousand acks, memory holds
# a thousand small entries, not a thousand suspended listeners. Its inbox row stays claimed.
WAITING_PER_SLOT = 4
# Headers worth keeping with a stored request (what Bolt and the listeners read).
KEPT_HEADERS = ("content-type", "x-slack-retry-num", "x-slack-retry-reason")


def default_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def takes(body: str, content_type: str) -> bool:
    """Whether this request is work (a command, an interaction, an event) rather than a handshake
    (`url_verification`, `ssl_check`), which Bolt answers directly."""
    if content_type.startswith("application/json"):
        try:
            value = json.loads(body)
        except ValueError:
            return False
        return isinstance(value, dict) and value.get("type") == "event_callback"
    form = parse_qs(body, keep_blank_values=True)
    return "payload" in form or "command" in form


def _content_type(headers: dict[str, str]) -> str:
    return next((v for k, v in headers.items() if k.lower() == "content-type"), "")


def at_rest(body: str, content_type: str) -> str:
    """The body as the inbox keeps it: every value redacted (a token typed into a reason never
    reaches the database, nor the driver's debug log). The key is the hash of the raw body; the
    stored one is re-signed when it is processed."""
    if content_type.startswith("application/json"):
        return json.dumps(redact_data(json.loads(body)), separators=(",", ":"))
    pairs = []
    for key, value in parse_qsl(body, keep_blank_values=True):
        if key == "payload":
            try:
                value = json.dumps(redact_data(json.loads(value)), separators=(",", ":"))
            except ValueError:
                value = redact(value)
        else:
            value = redact(value)
        pairs.append((key, value))
    return urlencode(pairs)


class Intake:
    def __init__(
        self,
        *,
        uow: UnitOfWork,
        dispatch: Dispatch,
        signing_secret: str,
        replica: str | None = None,
        lease: timedelta = timedelta(seconds=15),
        deadline: float = 2.0,
        poll_interval: float = 1.0,
        concurrency: int = 8,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._uow = uow
        self._dispatch = dispatch
        self._secret = signing_secret
        self.replica = replica or default_replica_id()
        self._lease = lease
        self._deadline = deadline
        self._poll = poll_interval
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._now = now
        self._tasks: dict[asyncio.Task[BoltResponse | None], Claim] = {}
        self._waiting_for_slot = 0
        self._queued: collections.deque[tuple[Claim, str, dict[str, str], float]] = collections.deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._arrivals = GroupCommit(uow, by=self.replica, lease=lease)

    # -- the ack path ------------------------------------------------------------------------

    async def handle(self, body: str, headers: dict[str, str], *, arrived: float) -> web.Response:
        """Write the request down, then process it; answer Slack with the listener's ack, the end
        of processing or, at the deadline, an empty 200, whichever comes first."""
        if self._closing:
            # Stopping: not a byte written, so Slack's retry (or the person) goes to another replica.
            return web.json_response({"error": "shutting down"}, status=503)
        now = self._now()
        kept = {k: v for k, v in headers.items() if k.lower() in KEPT_HEADERS}
        stored = at_rest(body, _content_type(headers))
        # Committed with the requests arriving beside it (bot/group_commit.py). Were this call
        # cancelled after the commit, the row waits for its lease to pass and any replica's loop.
        row_id = await self._arrivals.accept(
            Arriving(dedupe_key=hashlib.sha256(body.encode()).hexdigest(), body=stored, headers=kept, at=now)
        )
        if row_id is None:
            metrics.INBOX_REPEATS.inc()
            log.info("a request already in the inbox came again (a retry or a replay); nothing done")
            return web.Response(status=200)
        claim = Claim(id=row_id, by=self.replica, at=now)
        if self._closing:
            # Stopping since it arrived: it is written down, so Slack may hear 200, and it goes to
            # the other replicas at once rather than start here behind `stop`'s back.
            await self._release(claim, error="released by a replica stopping", backoff=False)
            return web.Response(status=200)
        acked: asyncio.Future[BoltResponse] = asyncio.get_running_loop().create_future()
        task = self._start(claim, stored, kept, arrived=arrived, acked=acked)
        # Neither is cancelled here: past the answer, the processing goes on.
        await asyncio.wait((task, acked), timeout=self._deadline, return_when=asyncio.FIRST_COMPLETED)
        if acked.done():
            response: BoltResponse | None = acked.result()
        elif task.done() and not task.cancelled():
            response = task.result()
        else:  # the deadline, or a stopping replica released the row: it is in the inbox either way
            return web.Response(status=200)
        if response is None:
            return web.Response(status=200)
        if response.status == 404:
            # A well-formed request no listener takes: acknowledged and ignored (as bot/server.py).
            return web.json_response({}, status=200)
        return web.Response(
            status=response.status,
            body=response.body,
            headers={k: v[0] for k, v in response.headers.items() if v and k.lower() == "content-type"},
        )

    # -- processing --------------------------------------------------------------------------

    def _start(
        self,
        claim: Claim,
        body: str,
        headers: dict[str, str],
        *,
        arrived: float,
        acked: asyncio.Future[BoltResponse] | None = None,
        queue_when_busy: bool = True,
    ) -> asyncio.Task[BoltResponse | None]:
        task = asyncio.create_task(
            self._process(claim, body, headers, arrived=arrived, acked=acked, queue_when_busy=queue_when_busy)
        )
        self._tasks[task] = claim
        task.add_done_callback(self._tasks.pop)
        task.add_done_callback(self._start_queued)
        return task

    def _start_queued(self, _finished: object = None) -> None:
        """A slot is free: start the requests queued for one (their listeners run again from the
        top, acking to nobody: Slack heard the first ack)."""
        while self._queued and len(self._tasks) < self.concurrency and not self._closing:
            claim, body, headers, arrived = self._queued.popleft()
            self._start(claim, body, headers, arrived=arrived, queue_when_busy=False)

    async def _process(
        self,
        claim: Claim,
        body: str,
        headers: dict[str, str],
        *,
        arrived: float,
        acked: asyncio.Future[BoltResponse] | None,
        queue_when_busy: bool = True,
    ) -> BoltResponse | None:
        """Hand the row to Bolt; `acked` (when someone waits to answer Slack) gets the listener's ack."""
        CURRENT.set(claim)  # this task's own context: only its transactions see it
        renewer = asyncio.create_task(self._renew(claim))
        holding = False

        async def take_slot() -> None:
            nonlocal holding
            if not holding:
                await self._slots.acquire()
                holding = True

        async def on_ack(response: BoltResponse) -> None:
            if acked is not None and not acked.done():
                acked.set_result(response)
            queue_full = self._waiting_for_slot >= WAITING_PER_SLOT * self.concurrency
            if queue_when_busy and not holding and self._slots.locked() and queue_full:
                raise _Deferred
            self._waiting_for_slot += 1
            try:
                await take_slot()  # the rest of the listener is processing: it waits for a slot
            finally:
                self._waiting_for_slot -= 1

        try:
            try:
                if _content_type(headers).startswith("application/json"):
                    await take_slot()  # an event: its listener runs before Bolt acks it
                response = await self._dispatch(body, self._signed(body, headers), on_ack)
            finally:
                if holding:
                    self._slots.release()
            if response.status >= 500:
                raise RuntimeError(f"Bolt answered {response.status}")
            if not claim.done:
                # Nothing was written (a status read, a refusal that changed nothing): mark it
                # processed in a transaction of its own, which completes the claim on commit.
                async with self._uow.transaction():
                    pass
            metrics.INBOX_TO_COMMIT.observe(time.time() - arrived)
            return response
        except ClaimLost:
            log.warning("inbox row %s was taken over by another replica; its work is theirs", claim.id)
            return None
        except _Deferred:
            self._queued.append((claim, body, headers, arrived))
            return None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("inbox row %s failed; it will be tried again", claim.id)
            await self._release(claim, error=str(exc)[:500], backoff=True)
            return None
        finally:
            # Between two renewals, never in one: cut off mid-statement, a renewal can leave
            # SQLite's write lock behind it (UnitOfWork.cancel_between_transactions).
            await self._uow.cancel_between_transactions([renewer])

    def _signed(self, body: str, headers: dict[str, str]) -> dict[str, str]:
        at = int(time.time())
        signature = SignatureVerifier(self._secret).generate_signature(timestamp=str(at), body=body) or ""
        return {**headers, "X-Slack-Request-Timestamp": str(at), "X-Slack-Signature": signature}

    async def _renew(self, claim: Claim) -> None:
        CURRENT.set(None)  # renewing is not processing: its transactions must not complete the claim
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            try:
                async with self._uow.transaction() as tx:
                    await tx.inbox.renew([claim.id], by=claim.by, until=self._now() + self._lease)
            except Exception:
                log.warning("could not renew the claim on inbox row %s", claim.id)

    async def _release(self, claim: Claim, *, error: str | None, backoff: bool) -> None:
        token = CURRENT.set(None)  # releasing must not mark the row processed
        try:
            await self._release_row(claim, error=error, backoff=backoff)
        finally:
            CURRENT.reset(token)

    async def _release_row(self, claim: Claim, *, error: str | None, backoff: bool) -> None:
        async with self._uow.transaction() as tx:
            row = await tx.inbox.get(claim.id)
            attempts = row.attempts if row is not None else MAX_ATTEMPTS
            if backoff and attempts >= MAX_ATTEMPTS:
                # Given up: recorded as done with the error, so it stops coming back.
                await tx.inbox.complete(claim.id, by=claim.by, at=self._now())
                log.error("inbox row %s given up after %s attempts: %s", claim.id, attempts, error)
                return
            delay = min(2.0**attempts, 60.0) if backoff else 0.0
            await tx.inbox.release(
                claim.id, by=claim.by, next_attempt_at=self._now() + timedelta(seconds=delay), error=error
            )

    # -- the loop every replica runs ----------------------------------------------------------

    def nudge(self) -> None:
        self._wake.set()

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Take back this replica's own rows, then claim and process due rows until stopped."""
        try:
            async with self._uow.transaction() as tx:
                taken = await tx.inbox.take_back(by=self.replica, now=self._now())
            if taken:
                log.info("took back %s inbox rows an earlier life of this replica held", taken)
        except Exception:
            log.exception("could not take back this replica's inbox rows")
        while not stop.is_set() and not self._closing:
            self._wake.clear()
            try:
                await self.process_due()
            except Exception:
                log.exception("could not claim inbox rows; trying again")
            waiters = [asyncio.ensure_future(e.wait()) for e in (self._wake, stop)]
            await asyncio.wait(waiters, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def process_due(self) -> int:
        """Claim what is due (as many as there are free slots) and start processing it."""
        free = max(0, self.concurrency - len(self._tasks))
        if free == 0 or self._closing:
            return 0
        async with self._uow.transaction() as tx:
            rows = await tx.inbox.claim(now=self._now(), limit=free, by=self.replica, lease=self._lease)
        for row in rows:
            arrived = row.received_at.timestamp()
            self._start(
                Claim(id=row.id, by=self.replica, at=self._now()), row.body, row.headers, arrived=arrived
            )
        return len(rows)

    async def stop(self, *, grace: float) -> None:
        """Claim nothing more; let running rows finish for `grace` s; release the rest, and the
        rows queued for a slot, at once."""
        self._closing = True
        self._wake.set()
        running = dict(self._tasks)
        late: set[asyncio.Task[BoltResponse | None]] = set()
        if running:
            _done, late = await asyncio.wait(running, timeout=grace)
            await self._uow.cancel_between_transactions(late)
        left = [running[task] for task in late if not running[task].done]
        left += [claim for claim, *_ in self._queued]
        self._queued.clear()
        for claim in left:
            try:
                await self._release(claim, error="released by a replica stopping", backoff=False)
            except Exception:
                log.exception("could not release inbox row %s; its lease will", claim.id)
        if left:
            log.info("released %s inbox rows not yet processed at shutdown", len(left))


class _Deferred(BaseException):
    """Raised from a listener's `ack` to unwind the rest of it: the request is acked and waits in
    `Intake._queued` for a slot. A BaseException, like a cancellation, so that Bolt lets it through
    rather than report it as the listener failing."""
