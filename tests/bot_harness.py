"""The whole bot, built by `bot.wiring`, served over HTTP on 127.0.0.1, talking to the Slack stand-in.

    @pytest.fixture
    async def bot_harness(tmp_path, sqlite_template):   # or conftest's database_url
        async with bot_world(tmp_path, sqlite_template) as factory, serving(factory) as harness:
            yield harness

    async def test_something(bot_harness: BotHarness) -> None:
        reply = await bot_harness.command("open bridge", user="U0ENG1")
        assert reply.ok and "Opened run" in reply.text
        await bot_harness.drain()                       # the outbox, sent now, deterministically
        assert bot_harness.slack.posted_to(BRIDGE)

What is real: the aiohttp server and its signature checks, Bolt, the listeners, the handlers, a
SQLite database (a copy of the migrated template), the dispatcher and slack_sdk's client over
HTTP to the stand-in. What is not: the clock (`SimulatedClock`, moved by the test), the traffic
control plane (`LogActuator`) and telemetry (the plan's `simulated` provider, or the test's own).

Requests are signed exactly as Slack signs them (tests/signing.py); each carries a `response_url`
on the stand-in, where the bot's ephemeral answer arrives. The outbox loop is not started: tests
call `drain()`, so nothing is sent behind their back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from bot.actuators import LogActuator
from bot.clock import SimulatedClock
from bot.dispatcher import DrainReport, RetryPolicy
from bot.settings import Settings
from bot.wiring import ActuatorFor, Bot, TelemetryFor, build
from tests import signing
from tests.slack_standin import Posted, SlackStandin

REPO = Path(__file__).resolve().parent.parent
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BRIDGE = "C0BRIDGE"
WAR_ROOM = signing.WAR_ROOM
TZ = timezone(timedelta(hours=-5))
WINDOW_START = datetime(2026, 11, 24, 21, 0, tzinfo=TZ)
# Retries in milliseconds, not seconds: the tests exercise the logic, not the patience.
FAST = RetryPolicy(
    attempts_per_round=3,
    first_delay=0.01,
    max_delay=0.05,
    round_first_delay=1.0,
    round_max_delay=5.0,
)
# Generous: only a failing test waits this long, and a loaded CI machine is slow, not wrong.
REPLY_TIMEOUT = 30.0

# A small plan for the end-to-end tests, in its own channel. Late reports on drain-queue move
# drain-queue, go-decision and canary, which concern release-eng, security (observer of
# drain-queue) and release-authority: never dba or payments-risk (schema-check does not move).
BRIDGE_PLAN = """\
plan: bridge
title: Order writes move to the new bridge
change_record: CHG-31337
channel: C0BRIDGE
window: {start: 2026-11-24T21:00:00-05:00, end: 2026-11-25T01:00:00-05:00}
material_shift: 5m
roles:
  release-authority: {primary: U0REL1, delegates: [U0REL2]}
  release-eng: {primary: U0ENG1, delegates: [U0ENG2]}
  payments-risk: {primary: U0RISK1}
  security: {primary: U0SEC1, delegates: [U0SEC2]}
  dba: {primary: U0DBA1}
authority:
  signoff: [release-authority, payments-risk]
  adopt_packets: [release-authority]
  change_delegates: [release-authority]
  start_and_rollback: [release-authority, release-eng]
telemetry: {provider: simulated}
gate_policy: {interval: 1m, consecutive_passes: 2, no_data: fail}
gates:
  error-rate: {query: "order_write_errors_ratio", pass: "<= 0.01", on_fail: hold}
actuator: {kind: log}
checkpoints:
  - {id: drain-queue, title: Drain the order queue, owner: release-eng, observers: [security],
     duration: 10m}
  - {id: schema-check, title: New schema verified, owner: dba, observers: [payments-risk],
     duration: 10m}
  - {id: go-decision, title: Go for the canary, owner: release-authority,
     after: [drain-queue, schema-check], hold: {release_by: [release-authority]}}
  - {id: canary, title: Shift 5 % of order writes, owner: release-eng, after: [go-decision],
     traffic: {percent: 5, cohort: orders}, soak: 10m, gates: [error-rate]}
rehearsal:
  telemetry: {error-rate: [[0m, 0.001]]}
"""


@dataclass
class Reply:
    """What came back for one request: the HTTP answer (Bolt's ack) and the response_url posts."""

    status: int
    ack: Any  # parsed JSON, or the text when the body is not JSON ("" for an empty ack)
    replies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The answer the person reads: the last response_url post, else the ack's text."""
        if self.replies:
            return str(self.replies[-1].get("text", ""))
        return str(self.ack.get("text", "")) if isinstance(self.ack, dict) else str(self.ack)

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.text.startswith(":no_entry:")

    @property
    def refused(self) -> bool:
        return self.status == 200 and self.text.startswith(":no_entry:")


class BotHarness:
    def __init__(
        self,
        *,
        slack: SlackStandin,
        bot: Bot,
        clock: SimulatedClock,
        actuator: LogActuator,
        url: str,
        http: aiohttp.ClientSession,
    ) -> None:
        self.slack = slack
        self.bot = bot
        self.clock = clock
        self.actuator = actuator
        self.url = url
        self.http = http
        self._ids = 0

    # -- requests ----------------------------------------------------------------------------

    async def post(self, body: str | bytes, headers: dict[str, str]) -> tuple[int, Any]:
        async with self.http.post(self.url, data=body, headers=headers) as response:
            raw = await response.text()
            try:
                return response.status, json.loads(raw) if raw else ""
            except ValueError:
                return response.status, raw

    def _response_id(self) -> str:
        self._ids += 1
        return f"r{self._ids}"

    async def _send(self, signed: signing.SignedRequest, rid: str, *, wait: bool) -> Reply:
        status, ack = await self.post(signed.body, signed.headers)
        reply = Reply(status=status, ack=ack)
        if wait and status == 200:
            reply.replies = await self.wait_for_responses(rid)
        return reply

    async def command(
        self,
        text: str,
        *,
        user: str = "U0ENG1",
        channel: str = BRIDGE,
        wait: bool = True,
        team: str = signing.TEAM_ID,
        enterprise: str | None = None,
    ) -> Reply:
        """`/cutover <text>` typed by `user` in `channel`; waits for the ephemeral answer."""
        rid = self._response_id()
        signed = signing.signed_slash_command(
            secret=SECRET,
            text=text,
            user_id=user,
            user_name=user.lower(),
            channel_id=channel,
            response_url=self.slack.response_url(rid),
            team_id=team,
            enterprise_id=enterprise,
        )
        return await self._send(signed, rid, wait=wait)

    async def click(
        self,
        action_id: str,
        value: str | dict[str, Any],
        *,
        user: str,
        channel: str = BRIDGE,
        team: str = signing.TEAM_ID,
        enterprise: str | None = None,
        message: Posted | None = None,
    ) -> Reply:
        """`user` clicks a button with this action id and value; waits for the ephemeral answer.

        `message`: the message (as the stand-in holds it) the button is on; its ts and blocks
        travel in the payload as Slack sends them."""
        rid = self._response_id()
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        extra: dict[str, Any] = {}
        if message is not None:
            extra = {"message_ts": message.ts, "blocks": message.blocks}
        signed = signing.signed_block_actions(
            secret=SECRET,
            action_id=action_id,
            value=text,
            user_id=user,
            username=user.lower(),
            channel_id=channel,
            response_url=self.slack.response_url(rid),
            team_id=team,
            enterprise_id=enterprise,
            **extra,
        )
        return await self._send(signed, rid, wait=True)

    async def click_on(self, message: Posted, action_id: str, *, user: str, index: int = 0) -> Reply:
        """`user` clicks the `index`-th button with `action_id` on a message the bot posted, where
        it was posted (its channel, its ts, its blocks, the button's own value)."""
        found = [b for b in buttons_of(message.blocks) if b.get("action_id") == action_id]
        assert found, f"no {action_id} button on {message.text!r}"
        return await self.click(
            action_id, str(found[index]["value"]), user=user, channel=message.channel, message=message
        )

    def posted(self, channel: str, *, on: str) -> list[Posted]:
        """The messages in `channel` (as they are now, updates applied) whose text starts with `on`."""
        return [m for m in self.slack.messages(channel) if m.text.startswith(on)]

    async def wait_for_responses(self, rid: str, *, count: int = 1) -> list[dict[str, Any]]:
        await wait_until(lambda: len(self.slack.responses(rid)) >= count, what=f"a reply on {rid}")
        return self.slack.responses(rid)

    # -- the bot's side ----------------------------------------------------------------------

    async def drain(self) -> DrainReport:
        return await self.bot.drain()

    async def run_in(self, channel: str = BRIDGE) -> str:
        async with self.bot.uow.transaction(read_only=True) as tx:
            row = await tx.runs.active_in_channel(channel)
        assert row is not None, f"no active run in {channel}"
        return row.run_id

    async def ledger_kinds(self, run: str) -> list[str]:
        async with self.bot.uow.transaction(read_only=True) as tx:
            return [entry.kind for entry in await tx.ledger.entries(run)]

    async def outbox_rows(self, run: str) -> list[Any]:
        async with self.bot.uow.transaction(read_only=True) as tx:
            return await tx.outbox.for_run(run)

    def buttons(self, channel: str, action_id: str, *, on: str = "") -> list[str]:
        """Values of the buttons with `action_id` on the messages the channel holds now (only those
        whose text starts with `on`), oldest first."""
        return [
            str(button["value"])
            for message in self.slack.messages(channel)
            if message.text.startswith(on)
            for button in buttons_of(message.blocks)
            if button.get("action_id") == action_id
        ]


def buttons_of(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every button in a message: in actions blocks and as section accessories."""
    found: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("type") == "actions":
            found += [e for e in block.get("elements", []) if e.get("type") == "button"]
        accessory = block.get("accessory")
        if isinstance(accessory, dict) and accessory.get("type") == "button":
            found.append(accessory)
    return found


async def wait_until(done: Callable[[], bool], *, what: str, timeout: float = REPLY_TIMEOUT) -> None:
    """Until `done()` holds (checked every few milliseconds), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


def write_plans(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    name = "payments-tokenization.yaml"
    shutil.copyfile(REPO / "examples" / name, directory / name)
    (directory / "bridge.yaml").write_text(BRIDGE_PLAN, encoding="utf-8")
    return directory


def settings_for(slack: SlackStandin, database_url: str, plans: Path) -> Settings:
    return Settings(
        slack_bot_token=SecretStr(slack.token),
        slack_signing_secret=SecretStr(SECRET),
        slack_api_url=slack.base_url,
        database_url=database_url,
        cutover_plans_dir=str(plans),
    )


@dataclass
class BotFactory:
    """Builds (and rebuilds, on the same database) bots for one test; stops them all at the end."""

    slack: SlackStandin
    settings: Settings
    clock: SimulatedClock
    actuator: LogActuator
    telemetry_for: TelemetryFor | None = None
    bots: list[Bot] = field(default_factory=list)

    async def build(
        self, *, telemetry_for: TelemetryFor | None = None, actuator_for: ActuatorFor | None = None
    ) -> Bot:
        actuator = self.actuator
        bot = await build(
            self.settings,
            clock=self.clock,
            telemetry_for=telemetry_for or self.telemetry_for,
            actuator_for=actuator_for or (lambda _plan: actuator),
            retry_policy=FAST,
            # Queued traffic shifts go right after each use case, so a test reads them at once.
            drain_shifts=True,
        )
        self.bots.append(bot)
        return bot

    async def close(self) -> None:
        for bot in reversed(self.bots):
            await bot.stop()
        self.bots.clear()


@contextlib.asynccontextmanager
async def bot_world(tmp_path: Path, database: Path | str) -> AsyncIterator[BotFactory]:
    """The Slack stand-in and the plans dir over a migrated database; bots built on demand.

    `database`: a migrated database's URL (conftest's `database_url`, SQLite or PostgreSQL), or
    the session's SQLite template file (conftest's `sqlite_template`), copied into `tmp_path`."""
    database_url = sqlite_copy(tmp_path, database) if isinstance(database, Path) else database
    plans = write_plans(tmp_path / "plans")
    async with SlackStandin() as slack:
        factory = BotFactory(
            slack=slack,
            settings=settings_for(slack, database_url, plans),
            clock=SimulatedClock(WINDOW_START - timedelta(minutes=5)),
            actuator=LogActuator(),
        )
        try:
            yield factory
        finally:
            await factory.close()


def sqlite_copy(tmp_path: Path, template: Path) -> str:
    """A fresh migrated SQLite database: a copy of the session's template (tests/conftest.py)."""
    database = tmp_path / "cutover.db"
    shutil.copyfile(template, database)
    return f"sqlite+aiosqlite:///{database}"


@contextlib.asynccontextmanager
async def serving(factory: BotFactory) -> AsyncIterator[BotHarness]:
    """A bot built by `factory`, started without its outbox loop, served on a random local port."""
    bot = await factory.build()
    await bot.start(dispatch_loop=False)
    runner = web.AppRunner(bot.web_app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as http:
            yield BotHarness(
                slack=factory.slack,
                bot=bot,
                clock=factory.clock,
                actuator=factory.actuator,
                url=f"http://127.0.0.1:{port}/slack/events",
                http=http,
            )
    finally:
        await runner.cleanup()
