"""Durable intake: a command Slack has heard 200 for is never lost, and is processed once.

In process (tests/bot_harness.py, SQLite and PostgreSQL): a replayed identical signed request and
a Slack retry of one (`X-Slack-Retry-Num`, a new signature over the same body) are answered 200
and change nothing. Slack hears the listener's ack as soon as the listener gives it, not when the
work after it ends: an empty 200 while the answer is still on its way to the response_url, a usage
line or another workspace's refusal in the ack body even while every processing slot is busy.

Out of process: `cutover-bot serve` children on one database, fed `/cutover hold` commands acked
before they are processed (`CUTOVER_ACK_DEADLINE=0`, and a response_url that answers slowly so
the commands queue behind the eight being answered), then stopped with SIGTERM or killed with
SIGKILL. A second child (another replica) picks up what the first left. Counted in the store:
one hold per command, every inbox row done.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.response import BoltResponse

from bot.clock import SimulatedClock
from bot.intake import WAITING_PER_SLOT, Intake
from store.db import make_engine
from store.inbox import InboxState
from store.uow import UnitOfWork
from tests import signing
from tests.bot_harness import (
    BRIDGE,
    REPLY_TIMEOUT,
    REPO,
    SECRET,
    BotHarness,
    bot_world,
    serving,
    sqlite_copy,
    wait_until,
)
from tests.slack_standin import SlackStandin

ENG1 = "U0ENG1"
REL1 = "U0REL1"
RISK1 = "U0RISK1"
COMMANDS = 40


async def _started(h: BotHarness, *, advance: bool = True) -> str:
    """The bridge run, signed off and started (holds are taken only once it runs)."""
    assert (await h.command("open bridge", user=ENG1)).ok
    for user in (REL1, RISK1):
        assert (await h.command("signoff", user=user)).ok
    if advance:
        h.clock.advance(timedelta(minutes=5))  # the window opens at 21:00
    reply = await h.command("start", user=ENG1)
    assert reply.ok and "running" in reply.text, reply.text
    return await h.run_in(BRIDGE)


@pytest.fixture
async def harness(tmp_path: Path, database_url: str) -> AsyncIterator[BotHarness]:
    async with bot_world(tmp_path, database_url) as factory, serving(factory) as h:
        yield h


async def _holds(uow: UnitOfWork, run: str) -> list[str]:
    async with uow.transaction(read_only=True) as tx:
        return [hold.reason for hold in await tx.holds.for_run(run)]


def _hold_request(h: BotHarness, reason: str, rid: str) -> signing.SignedRequest:
    return signing.signed_slash_command(
        secret=SECRET,
        text=f"hold {reason}",
        user_id=ENG1,
        user_name="eng1",
        channel_id=BRIDGE,
        response_url=h.slack.response_url(rid),
    )


async def test_a_replayed_identical_signed_hold_adds_one_hold(harness: BotHarness) -> None:
    h = harness
    run = await _started(h)
    signed = _hold_request(h, "vendor paged", "replayed")

    first = await h.post(signed.body, signed.headers)
    second = await h.post(signed.body, signed.headers)  # the same bytes, the same signature

    assert (first[0], second[0]) == (200, 200)
    await h.wait_for_responses("replayed")
    assert (await _holds(h.bot.uow, run)).count("vendor paged") == 1
    await asyncio.sleep(0.2)
    assert len(h.slack.responses("replayed")) == 1


async def test_a_slack_retry_of_a_command_is_answered_and_processed_once(harness: BotHarness) -> None:
    h = harness
    run = await _started(h)
    signed = _hold_request(h, "retried by slack", "retried")
    assert (await h.post(signed.body, signed.headers))[0] == 200

    # Slack's retry: the same body, signed again a little later, with the retry headers.
    later = signing.sign(
        signed.body,
        secret=SECRET,
        content_type="application/x-www-form-urlencoded",
        timestamp=int(time.time()) + 1,
    )
    retry_headers = {**later.headers, "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert (await h.post(later.body, retry_headers))[0] == 200

    await h.wait_for_responses("retried")
    assert (await _holds(h.bot.uow, run)).count("retried by slack") == 1
    await asyncio.sleep(0.2)
    assert len(h.slack.responses("retried")) == 1


# -- the ack comes when the listener gives it ---------------------------------------------------


class PlaysBolt:
    """The intake's dispatch, doing what Bolt does with this bot's listeners: the listener acks
    (with a usage line for `/cutover frobnicate`, else empty), then works until `finish` is set."""

    def __init__(self) -> None:
        self.finish = asyncio.Event()
        self.working = 0

    async def __call__(
        self, body: str, _headers: dict[str, str], on_ack: Callable[[BoltResponse], Awaitable[None]]
    ) -> BoltResponse:
        text = dict(parse_qsl(body)).get("text", "")
        acked = BoltResponse(status=200, body={"text": f"Usage: {text}"} if text == "frobnicate" else "")
        await on_ack(acked)
        self.working += 1
        await self.finish.wait()
        return acked


async def _inbox(uow: UnitOfWork) -> list[str]:
    async with uow.transaction(read_only=True) as tx:
        return [row.state for row in await tx.inbox.all()]


def _typed(text: str) -> signing.SignedRequest:
    return signing.signed_slash_command(
        secret=SECRET, text=text, user_id=ENG1, user_name="eng1", channel_id=BRIDGE, trigger_id=text
    )


async def test_slack_hears_the_listeners_empty_ack_while_the_work_after_it_goes_on(uow: UnitOfWork) -> None:
    bolt = PlaysBolt()
    # A deadline no test waits for: only the listener's ack can answer Slack here.
    intake = Intake(uow=uow, dispatch=bolt, signing_secret=SECRET, deadline=3600)
    signed = _typed("status")

    answer = await intake.handle(signed.body, signed.headers, arrived=time.time())

    assert (answer.status, answer.text) == (200, "")
    assert bolt.working == 1 and await _inbox(uow) == [InboxState.PROCESSING.value]
    bolt.finish.set()
    await intake.stop(grace=REPLY_TIMEOUT)
    assert await _inbox(uow) == [InboxState.DONE.value]


async def test_with_every_processing_slot_busy_an_ack_with_a_body_still_answers_at_once(
    uow: UnitOfWork,
) -> None:
    bolt = PlaysBolt()
    intake = Intake(uow=uow, dispatch=bolt, signing_secret=SECRET, deadline=3600, concurrency=1)
    busy, typo = _typed("status"), _typed("frobnicate")
    await intake.handle(busy.body, busy.headers, arrived=time.time())

    answer = await intake.handle(typo.body, typo.headers, arrived=time.time())

    assert answer.status == 200 and json.loads(answer.text) == {"text": "Usage: frobnicate"}
    assert bolt.working == 1, "the second listener went on without a processing slot"
    bolt.finish.set()
    await intake.stop(grace=REPLY_TIMEOUT)
    assert bolt.working == 2
    assert await _inbox(uow) == [InboxState.DONE.value] * 2


async def test_a_request_written_down_as_the_replica_stops_is_answered_and_left_to_the_others(
    tmp_path: Path, sqlite_template: Path
) -> None:
    uow = UnitOfWork(make_engine(sqlite_copy(tmp_path, sqlite_template)))
    bolt = PlaysBolt()
    intake = Intake(uow=uow, dispatch=bolt, signing_secret=SECRET)
    holding, let_go = asyncio.Event(), asyncio.Event()

    async def hold_the_write_lock() -> None:
        async with uow.transaction():
            holding.set()
            await let_go.wait()

    holder = asyncio.create_task(hold_the_write_lock())
    await holding.wait()
    signed = _typed("status")
    answering = asyncio.create_task(intake.handle(signed.body, signed.headers, arrived=time.time()))
    await asyncio.sleep(0)  # in: its row waits for the write lock
    await intake.stop(grace=REPLY_TIMEOUT)
    let_go.set()
    await holder

    answer = await answering
    try:
        async with uow.transaction(read_only=True) as tx:
            (row,) = await tx.inbox.all()
    finally:
        await uow.dispose()
    assert answer.status == 200 and bolt.working == 0
    assert (row.state, row.claimed_by) == (InboxState.PENDING.value, None)


async def test_while_every_slot_answers_slowly_usage_lines_and_refusals_still_come_in_the_ack(
    harness: BotHarness,
) -> None:
    h = harness
    h.slack.hold_answers()
    slow = await asyncio.gather(*(h.command("status", wait=False) for _ in range(h.bot.intake.concurrency)))
    assert all((reply.status, reply.ack) == (200, "") for reply in slow)
    await wait_until(lambda: h.slack.answers_waiting == h.bot.intake.concurrency, what="every slot busy")

    typo = await h.command("late drain-queue", wait=False)
    foreign = await h.command("open bridge", team="T0ELSEWHERE", wait=False)
    one_more = await h.command("status", wait=False)

    assert typo.status == 200 and "Usage: /cutover late" in typo.ack["text"]
    assert foreign.status == 200 and foreign.ack["text"].startswith(":no_entry:")
    assert "workspace" in foreign.ack["text"]
    assert (one_more.status, one_more.ack) == (200, "")
    assert h.slack.responses() == []
    h.slack.release_answers()
    await wait_until(lambda: len(h.slack.responses()) == len(slow) + 1, what="every status answered")
    assert all("No active cutover run" in answer["text"] for answer in h.slack.responses())


async def test_a_burst_past_the_queue_is_acked_at_once_and_each_request_answered_once(
    harness: BotHarness,
) -> None:
    h = harness
    h.slack.hold_answers()
    burst = h.bot.intake.concurrency * (WAITING_PER_SLOT + 2)
    acks = await asyncio.gather(*(h.command("status", wait=False) for _ in range(burst)))
    assert all((reply.status, reply.ack) == (200, "") for reply in acks), "every one acked at once"

    h.slack.release_answers()
    await wait_until(lambda: len(h.slack.responses()) >= burst, what="every status answered")
    for _ in range(500):  # the row is marked done just after its answer is queued
        async with h.bot.uow.transaction(read_only=True) as tx:
            states = [r.state for r in await tx.inbox.all()]
        if states == [InboxState.DONE.value] * burst:
            break
        await asyncio.sleep(0.02)
    assert states == [InboxState.DONE.value] * burst
    assert len(h.slack.responses()) == burst, "none answered twice"


# -- serve children, stopped and killed -----------------------------------------------------


class SlowAnswers(SlackStandin):
    """The stand-in whose response_url answers after `answer_delay` seconds."""

    answer_delay = 0.0

    async def _response_url(self, request: web.Request) -> web.Response:
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        return await super()._response_url(request)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Child:
    def __init__(self, *, env: dict[str, str], replica: str, log: Path) -> None:
        self.port = _free_port()
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(self.port)],
            cwd=REPO,
            env={**env, "CUTOVER_REPLICA_ID": replica},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    async def ready(self, http: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "serve exited before it was ready"
            try:
                async with http.get(f"{self.url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError("serve never answered /healthz")

    async def wait(self, timeout: float) -> int:
        """The exit status; waits without blocking the loop (the Slack stand-in answers on it)."""
        deadline = time.monotonic() + timeout
        try:
            while (status := self.process.poll()) is None:
                if time.monotonic() > deadline:
                    self.process.kill()
                    raise AssertionError(f"serve did not exit within {timeout} s")
                await asyncio.sleep(0.02)
            return status
        finally:
            self.log.close()


async def _inbox_states(url: str) -> dict[str, int]:
    uow = UnitOfWork(make_engine(url))
    try:
        async with uow.transaction(read_only=True) as tx:
            rows = await tx.inbox.all()
    finally:
        await uow.dispose()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    return counts


async def _fire_holds(http: aiohttp.ClientSession, url: str, slack: SlackStandin, tag: str) -> int:
    """COMMANDS `/cutover hold` at once; how many Slack heard 200 for."""

    async def one(i: int) -> int:
        signed = signing.signed_slash_command(
            secret=SECRET,
            text=f"hold {tag} {i}",
            user_id=ENG1,
            user_name="eng1",
            channel_id=BRIDGE,
            response_url=slack.response_url(f"{tag}-{i}"),
            trigger_id=f"{tag}.{i}",
        )
        async with http.post(f"{url}/slack/events", data=signed.body, headers=signed.headers) as response:
            await response.read()
            return response.status

    statuses = await asyncio.gather(*(one(i) for i in range(COMMANDS)))
    return statuses.count(200)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_commands_acked_before_a_replica_stops_are_all_processed_once(
    tmp_path: Path, database_url: str, stop: signal.Signals
) -> None:
    async with bot_world(tmp_path, database_url) as factory:
        # The children read the system clock: the bridge plan's window is moved around now.
        now = datetime.now(UTC).replace(microsecond=0)
        plan = Path(factory.settings.cutover_plans_dir) / "bridge.yaml"
        plan.write_text(
            plan.read_text(encoding="utf-8").replace(
                "window: {start: 2026-11-24T21:00:00-05:00, end: 2026-11-25T01:00:00-05:00}",
                f"window: {{start: {now.isoformat()}, end: {(now + timedelta(hours=6)).isoformat()}}}",
            ),
            encoding="utf-8",
        )
        factory.clock = SimulatedClock(now + timedelta(seconds=1))
        async with serving(factory) as h:
            run = await _started(h, advance=False)
        await factory.close()
        slack = SlowAnswers()
        await slack.start()
        try:
            slack.answer_delay = 0.5
            env = {
                **os.environ,
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_BOT_TOKEN": slack.token,
                "SLACK_API_URL": slack.base_url,
                "DATABASE_URL": database_url,
                "CUTOVER_PLANS_DIR": factory.settings.cutover_plans_dir,
                "CUTOVER_ACK_DEADLINE": "0",
                "CUTOVER_INBOX_LEASE": "3",
                "CUTOVER_SHUTDOWN_GRACE": "1",
            }
            async with aiohttp.ClientSession() as http:
                first = Child(env=env, replica="replica-a", log=tmp_path / "a.log")
                await first.ready(http)
                acked = await _fire_holds(http, first.url, slack, stop.name.lower())
                assert acked == COMMANDS
                done = (await _inbox_states(database_url)).get(InboxState.DONE.value, 0)
                assert done < COMMANDS, "every command was processed before the stop: nothing tested"
                started = time.monotonic()
                first.process.send_signal(stop)
                status = await first.wait(timeout=20)
                stopped_in = time.monotonic() - started
                print(
                    f"{stop.name}: {COMMANDS} acked, {COMMANDS - done} not yet processed,"
                    f" stopped in {stopped_in:.2f} s"
                )
                if stop is signal.SIGTERM:
                    assert status == 0
                    assert stopped_in < 10, f"a SIGTERM took {stopped_in:.1f} s"

                second = Child(env=env, replica="replica-b", log=tmp_path / "b.log")
                try:
                    await second.ready(http)
                    await wait_until_done(database_url)
                finally:
                    second.process.send_signal(signal.SIGTERM)
                    await second.wait(timeout=20)
        finally:
            await slack.stop()

        uow = UnitOfWork(make_engine(database_url))
        try:
            reasons = await _holds(uow, run)
        finally:
            await uow.dispose()
        tag = stop.name.lower()
        for i in range(COMMANDS):
            assert reasons.count(f"{tag} {i}") == 1, (
                f"hold {tag} {i} was opened {reasons.count(f'{tag} {i}')} times"
            )


async def wait_until_done(url: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = await _inbox_states(url)
        if set(states) == {InboxState.DONE.value}:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"inbox rows still waiting: {await _inbox_states(url)}")


__all__ = ["wait_until"]


async def test_a_second_serve_on_one_sqlite_file_refuses_to_start_naming_postgresql(
    tmp_path: Path, sqlite_template: Path
) -> None:
    database = tmp_path / "cutover.db"
    database.write_bytes(sqlite_template.read_bytes())
    async with SlackStandin() as slack, aiohttp.ClientSession() as http:
        env = {
            **os.environ,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_API_URL": slack.base_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
            "CUTOVER_PLANS_DIR": str(tmp_path),
        }
        first = Child(env=env, replica="one", log=tmp_path / "one.log")
        try:
            await first.ready(http)
            second = Child(env=env, replica="two", log=tmp_path / "two.log")
            status = await second.wait(timeout=20)
            said = (tmp_path / "two.log").read_text(encoding="utf-8")
        finally:
            first.process.send_signal(signal.SIGTERM)
            await first.wait(timeout=20)
    assert status == 2
    assert "another serve is already using the SQLite database" in said
    assert "PostgreSQL" in said


async def test_the_queue_gauges_are_read_from_the_database_at_scrape_time(harness: BotHarness) -> None:
    h = harness
    assert (await h.command("open bridge", user=ENG1)).ok
    h.slack.down()  # nothing leaves (and this harness runs no outbox loop): the rows wait
    run = await h.run_in(BRIDGE)
    waiting = [row for row in await h.outbox_rows(run) if row.state in ("pending", "sending")]

    async with h.http.get(h.url.replace("/slack/events", "/metrics")) as response:
        text = await response.text()
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }

    assert waiting and values["cutover_outbox_pending"] == len(waiting)
    assert values["cutover_outbox_oldest_pending_seconds"] >= 0
    assert values["cutover_inbox_depth"] == 0  # the open was processed before its answer came
    assert values["cutover_request_to_commit_seconds_count"] >= 1
