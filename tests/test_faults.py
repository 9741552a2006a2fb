"""Faults end to end through the use cases, the outbox, the dispatcher and the Slack stand-in.

- Slack goes down in the middle of a 300-person fan-out and comes back: every notice arrives,
  none twice. The outage is thrown by the stand-in itself (down from the request after exactly
  the 100th delivered DM; up once it has answered 60 requests with 503, half a second has passed
  and at least one row has failed a whole round of attempts), so it always falls in the middle of
  the fan-out and always outlasts the in-round retries, however loaded the machine.
- A card number and a bot token typed into every free-text field (late reason, reject reason,
  hold reason, pause and freeze reasons, rollback reason) never reach Slack, the ledger, the
  outbox or the logs: once through the use cases, once typed as slash commands into the real
  bot served over HTTP (where the answers on response_url and the rollback confirmation button
  are also looked at).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from benchmarks._world import AUTHORITY, WINDOW_START, World, chained_plan, make_world, started_run
from bot.dispatcher import Dispatcher, RetryPolicy, make_client
from bot.ids import ActionId
from bot.intents import dispatch
from bot.outbox_port import StoreOutbox
from handlers import commands as c
from handlers.adoption import adopt_packet
from handlers.outcome import Outcome
from handlers.resequence import report_late
from tests.bot_harness import BRIDGE, BotHarness, bot_world, buttons_of, serving
from tests.slack_standin import SlackStandin

# Retries in milliseconds: the test exercises the logic, not the patience.
FAST = RetryPolicy(
    attempts_per_round=3,
    first_delay=0.01,
    max_delay=0.05,
    round_first_delay=0.05,
    round_max_delay=0.3,
    max_inline_wait=2.0,
)

CARD = "4111 1111 1111 1111"
TOKEN = "xoxb-2948171651-5512008811-Zq8sYxT3kLmN0pQrStUvWx1y"
SECRETS = (CARD, CARD.replace(" ", ""), CARD.replace(" ", "-"), TOKEN, "Zq8sYxT3kLmN0pQrStUvWx1y")
TYPED = f"card {CARD} and token {TOKEN} pasted by mistake"


@pytest.fixture
async def world() -> Any:
    w = await make_world()
    try:
        yield w
    finally:
        await w.close()


class OutageStandin(SlackStandin):
    """The stand-in, down from the request after the `after_dms`-th delivered DM, and up again once
    (a) it has answered `for_503s` requests with 503 and (b) at least `for_seconds` have passed.

    The switches are thrown inside the stand-in as it answers, so the outage starts at exactly the
    same point of the fan-out on every run, however loaded the machine: no race with a watcher."""

    def __init__(self, *, after_dms: int, for_503s: int, for_seconds: float) -> None:
        super().__init__()
        self.after_dms = after_dms
        self.for_503s = for_503s
        self.for_seconds = for_seconds
        self.dms_before_outage = 0
        self.answered_503: Counter[str] = Counter()
        self.went_down_at: float | None = None
        self.came_up_at: float | None = None

    def _answer(
        self, method: str, token: str | None, body: dict[str, Any], arrived: float
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        if (
            self.went_down_at is not None
            and self.came_up_at is None
            and (
                self.answered_503.total() >= self.for_503s
                and time.monotonic() - self.went_down_at >= self.for_seconds
            )
        ):
            self.came_up_at = time.monotonic()
            self.up()
        status, answer, headers = super()._answer(method, token, body, arrived)
        if status == 503:
            self.answered_503[str(body.get("channel"))] += 1
        is_dm = method == "chat.postMessage" and str(body.get("channel", "")).startswith("U")
        if self.went_down_at is None and is_dm and status == 200 and answer and answer.get("ok"):
            self.dms_before_outage += 1
            if self.dms_before_outage == self.after_dms:
                self.went_down_at = time.monotonic()
                self.down()
        return status, answer, headers


def _dispatcher(slack: SlackStandin, world: World) -> Dispatcher:
    client = make_client(token=slack.token, base_url=slack.base_url, timeout=15)
    outbox = StoreOutbox(world.uow)
    return Dispatcher(client=client, outbox=outbox, find_target=outbox.find_target, policy=FAST)


async def _unfinished(world: World, run: str) -> list[Any]:
    async with world.uow.transaction(read_only=True) as tx:
        return [r for r in await tx.outbox.for_run(run) if r.state in ("pending", "sending")]


async def _drain_until_settled(
    dispatcher: Dispatcher, world: World, run: str, *, limit_s: float = 60
) -> None:
    base, began = world.clock.now(), time.monotonic()

    def now_fn() -> datetime:
        return base + timedelta(seconds=time.monotonic() - began)

    while time.monotonic() - began < limit_s:
        await dispatcher.drain(now_fn=now_fn)
        if not await _unfinished(world, run):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"outbox not settled after {limit_s} s")


async def test_slack_down_in_the_middle_of_a_300_person_fan_out_loses_no_notice_and_sends_none_twice(
    world: World,
) -> None:
    run = await started_run(world, chained_plan(300))
    # Down long enough for the breaker to open and for two probes (two later drains) to fail.
    down_for = FAST.breaker_failures + 2
    slack = OutageStandin(after_dms=100, for_503s=down_for, for_seconds=0.5)
    async with slack:
        dispatcher = _dispatcher(slack, world)
        await dispatcher.drain(now_fn=world.clock.now)  # the opening's own notices, Slack still up
        assert slack.went_down_at is None
        world.clock.advance(timedelta(minutes=1))
        late = await report_late(
            c.ReportLate(run=run, user="U0P0000", checkpoint="cp-0", until=WINDOW_START + timedelta(hours=1)),
            world.deps,
        )
        assert late.ok, late.message
        adopted = await adopt_packet(c.AdoptPacket(run=run, user=AUTHORITY), world.deps)
        assert adopted.ok, adopted.message
        rows = await _unfinished(world, run)
        dms = {r.recipient for r in rows if r.kind == "delta_dm"}
        assert len(dms) == 300
        before = len(slack.calls())

        await _drain_until_settled(dispatcher, world, run)
        calls = slack.calls()[before:]

    # The outage fell in the middle of the fan-out, lasted, and ended before the fan-out did.
    assert slack.went_down_at is not None and slack.came_up_at is not None
    assert slack.came_up_at - slack.went_down_at >= 0.5
    statuses = Counter(call.status for call in calls)
    assert statuses[503] >= down_for, statuses
    # The breaker: 200 DMs waited out the outage, and a failing Slack was not called for each of
    # them (let alone each attempt): only until the breaker opened, then once a drain (a probe).
    assert statuses[503] < 50, statuses
    first_503 = next(i for i, call in enumerate(calls) if call.status == 503)
    delivered_dms_first = [
        call for call in calls[:first_503] if call.ok and str(call.body.get("channel")).startswith("U")
    ]
    assert len(delivered_dms_first) == 100
    after_up = [call for call in calls if call.at >= slack.came_up_at and call.ok]
    assert after_up, "nothing was delivered after Slack came back"

    # Every notice arrived, none twice.
    delivered = Counter(
        call.body.get("channel") for call in calls if call.ok and call.method == "chat.postMessage"
    )
    assert {user for user in dms if delivered[user] == 0} == set()
    assert {user: n for user, n in delivered.items() if user in dms and n > 1} == {}
    # Each call carries its outbox row's id (two updates of the live card may say the same).
    ok_rows = Counter(call.body["metadata"]["event_payload"]["outbox_id"] for call in calls if call.ok)
    assert [row for row, n in ok_rows.items() if n > 1] == []
    assert sum(ok_rows.values()) == len(rows)
    async with world.uow.transaction(read_only=True) as tx:
        settled = await tx.outbox.for_run(run)
    final = {r.id: r.state for r in settled}
    assert {r.id: final[r.id] for r in rows if final[r.id] != "sent"} == {}
    assert any(r.attempts >= 2 for r in settled), "no row was ever put back in the queue"


def _assert_no_secret(places: dict[str, str]) -> None:
    for secret in SECRETS:
        for where, text in places.items():
            assert secret not in text, f"{secret!r} reached the {where}"


async def test_a_card_number_and_a_token_typed_in_every_reason_never_reach_slack_ledger_outbox_or_logs(
    world: World,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    plan = chained_plan(5, plan_id="secrets", one_role_each=False)
    run = await started_run(world, plan)
    async with SlackStandin() as slack:
        dispatcher = _dispatcher(slack, world)
        world.clock.advance(timedelta(minutes=1))
        steps: list[tuple[str, Callable[[], Awaitable[Outcome]]]] = [
            (
                "late reason",
                lambda: dispatch(
                    c.ReportLate(
                        run=run,
                        user="U0ENG1",
                        checkpoint="cp-0",
                        until=WINDOW_START + timedelta(hours=1),
                        reason=TYPED,
                    ),
                    world.deps,
                ),
            ),
            (
                "reject reason",
                lambda: dispatch(
                    c.RejectPacket(run=run, user=AUTHORITY, version=2, reason=TYPED), world.deps
                ),
            ),
            (
                "second late reason",
                lambda: dispatch(
                    c.ReportLate(
                        run=run,
                        user="U0ENG1",
                        checkpoint="cp-0",
                        until=WINDOW_START + timedelta(hours=1, minutes=10),
                        reason=TYPED,
                    ),
                    world.deps,
                ),
            ),
            ("adoption", lambda: dispatch(c.AdoptPacket(run=run, user=AUTHORITY), world.deps)),
            (
                "pause reason",
                lambda: dispatch(
                    c.EngineIntent(run=run, user=AUTHORITY, reason=TYPED, move=c.Move.PAUSE), world.deps
                ),
            ),
            (
                "resume",
                lambda: dispatch(c.EngineIntent(run=run, user=AUTHORITY, move=c.Move.RESUME), world.deps),
            ),
            (
                "freeze reason",
                lambda: dispatch(
                    c.EngineIntent(run=run, user=AUTHORITY, reason=TYPED, move=c.Move.FREEZE), world.deps
                ),
            ),
            (
                "unfreeze",
                lambda: dispatch(c.EngineIntent(run=run, user=AUTHORITY, move=c.Move.UNFREEZE), world.deps),
            ),
            ("hold reason", lambda: dispatch(c.OpenHold(run=run, user=AUTHORITY, reason=TYPED), world.deps)),
            (
                "rollback reason",
                lambda: dispatch(c.Rollback(run=run, user=AUTHORITY, scope="all", reason=TYPED), world.deps),
            ),
        ]
        for what, step in steps:
            outcome = await step()
            assert outcome.ok, (what, outcome.message)
            _assert_no_secret({f"answer to the {what}": outcome.message})
            world.clock.advance(timedelta(seconds=30))
        await _drain_until_settled(dispatcher, world, run, limit_s=20)
        sent = json.dumps([(call.method, call.body) for call in slack.calls()])
        responses = json.dumps(slack.responses())
    async with world.uow.transaction(read_only=True) as tx:
        entries = await tx.ledger.entries(run)
        outbox = await tx.outbox.for_run(run)
        holds = await tx.holds.for_run(run)
        packets = await tx.packets.for_run(run)
    ledger = json.dumps([(e.kind, e.payload) for e in entries], default=str)
    queued = json.dumps([r.payload for r in outbox], default=str)
    held = json.dumps([h.reason for h in holds])
    packet_reasons = json.dumps([p.reason for p in packets])
    logs = caplog.text + json.dumps([r.getMessage() for r in caplog.records])
    # The reasons did get through (redacted), so the checks below look at the right places.
    kinds = [e.kind for e in entries]
    for kind in ("late_reported", "packet_rejected", "run_paused", "run_frozen", "hold_opened"):
        assert kind in kinds, (kind, kinds)
    with_reason = [e.kind for e in entries if "pasted by mistake" in json.dumps(e.payload)]
    for kind in ("late_reported", "packet_rejected", "hold_opened"):
        assert kind in with_reason, (kind, with_reason)
    assert "pasted by mistake" in sent
    assert "[card ****1111]" in ledger
    _assert_no_secret(
        {
            "Slack": sent,
            "response_url": responses,
            "ledger": ledger,
            "outbox": queued,
            "holds": held,
            "packets": packet_reasons,
            "logs": logs,
        }
    )


@pytest.fixture
async def bot_harness(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[BotHarness]:
    async with bot_world(tmp_path, sqlite_template) as factory, serving(factory) as harness:
        yield harness


async def _started_bridge(h: BotHarness) -> str:
    assert (await h.command("open bridge", user="U0ENG1")).ok
    for user in ("U0REL1", "U0RISK1"):
        assert (await h.command("signoff", user=user)).ok
    h.clock.advance(timedelta(minutes=5))
    assert (await h.command("start", user="U0ENG1")).ok
    return await h.run_in(BRIDGE)


async def _everything_the_bot_wrote(
    h: BotHarness, run: str, caplog: pytest.LogCaptureFixture
) -> dict[str, str]:
    async with h.bot.uow.transaction(read_only=True) as tx:
        entries = await tx.ledger.entries(run)
        outbox = await tx.outbox.for_run(run)
    return {
        "Slack": json.dumps([(call.method, call.body) for call in h.slack.calls()]),
        "response_url": json.dumps(h.slack.responses()),
        "ledger": json.dumps([(e.kind, e.payload) for e in entries], default=str),
        "outbox": json.dumps([r.payload for r in outbox], default=str),
        "logs": caplog.text + json.dumps([r.getMessage() for r in caplog.records]),
    }


# Typed as slash commands into the bridge plan's war room, in this order (who, what).
TYPED_COMMANDS: list[tuple[str, str]] = [
    ("U0ENG1", f"late drain-queue +25m {TYPED}"),
    ("U0REL1", f"reject v2 {TYPED}"),
    ("U0ENG1", f"late drain-queue +30m {TYPED}"),
    ("U0REL1", "adopt"),
    ("U0ENG1", f"pause {TYPED}"),
    ("U0ENG1", "resume"),
    ("U0ENG1", f"freeze {TYPED}"),
    ("U0ENG1", "unfreeze"),
    ("U0SEC1", f"hold {TYPED}"),
]


async def test_secrets_typed_into_slash_command_reasons_never_reach_slack_the_ledger_or_the_logs(
    bot_harness: BotHarness,
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = bot_harness
    caplog.set_level(logging.DEBUG)
    run = await _started_bridge(h)

    for user, text in TYPED_COMMANDS:
        reply = await h.command(text, user=user)
        assert reply.ok, (text, reply.text)
        h.clock.advance(timedelta(seconds=30))
    await h.drain()

    places = await _everything_the_bot_wrote(h, run, caplog)
    kinds = await h.ledger_kinds(run)
    for kind in ("late_reported", "packet_rejected", "run_paused", "run_frozen", "hold_opened"):
        assert kind in kinds, (kind, kinds)
    assert "pasted by mistake" in places["Slack"] and "pasted by mistake" in places["response_url"]
    _assert_no_secret(places)


async def test_a_secret_typed_into_a_rollback_reason_never_reaches_slack_even_in_the_confirm_button(
    bot_harness: BotHarness,
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = bot_harness
    caplog.set_level(logging.DEBUG)
    run = await _started_bridge(h)

    question = await h.command(f"rollback all {TYPED}", user="U0ENG1")
    assert question.ok, question.text
    await h.drain()
    (asked,) = [m for m in h.slack.messages(BRIDGE) if m.text.startswith("Roll back")]
    (confirm,) = buttons_of(asked.blocks)
    assert confirm["action_id"] == ActionId.CONFIRM_ROLLBACK
    clicked = await h.click_on(asked, ActionId.CONFIRM_ROLLBACK, user="U0ENG1")
    assert clicked.ok and "Rolled back everything" in clicked.text, clicked.text
    await h.drain()

    places = await _everything_the_bot_wrote(h, run, caplog)
    assert "global_rollback" in await h.ledger_kinds(run)
    assert "pasted by mistake" in places["ledger"]
    _assert_no_secret(places)
