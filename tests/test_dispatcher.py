"""The outbox dispatcher against the Slack stand-in: nothing lost, nothing sent twice, order kept."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.dispatcher import Dispatcher, OutboxPort, RetryPolicy, make_client
from packets.messages import MessageKind
from tests.slack_standin import SlackStandin
from tests.test_render import SAMPLES, packet

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
FAST = RetryPolicy(
    attempts_per_round=3,
    first_delay=0.01,
    max_delay=0.05,
    round_first_delay=5.0,
    round_max_delay=60.0,
    max_inline_wait=5.0,
)


@dataclass(slots=True)
class FakeRow:
    id: int
    kind: str
    recipient: str
    payload: Mapping[str, Any]
    attempts: int = 0
    state: str = "pending"
    next_attempt_at: datetime = T0
    ts: str | None = None
    channel: str | None = None
    error: str | None = None


@dataclass(slots=True)
class FakeOutbox:
    """An in-memory outbox that claims like store/outbox.py and records every call made to it."""

    rows: list[FakeRow] = field(default_factory=list)
    claims: list[list[int]] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    retries: list[tuple[int, datetime, str]] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    # Rows another dispatcher claimed after this one's lease passed.
    taken_over: set[int] = field(default_factory=set)
    kept: list[list[int]] = field(default_factory=list)

    def add(self, kind: MessageKind, recipient: str, payload: Mapping[str, Any]) -> FakeRow:
        row = FakeRow(id=len(self.rows) + 1, kind=kind.value, recipient=recipient, payload=payload)
        self.rows.append(row)
        return row

    def row(self, row_id: int) -> FakeRow:
        return self.rows[row_id - 1]

    async def claim(self, *, now: datetime, limit: int) -> Sequence[FakeRow]:
        chosen: list[FakeRow] = []
        blocked: set[str] = set()
        for row in self.rows:
            if row.state != "pending" or row.recipient in blocked:
                continue
            if row.next_attempt_at > now:
                blocked.add(row.recipient)  # a later row never overtakes a waiting one
                continue
            chosen.append(row)
            if len(chosen) == limit:
                break
        for row in chosen:
            row.state = "sending"
            row.attempts += 1
        self.claims.append([row.id for row in chosen])
        return chosen

    async def keep(self, row_ids: Sequence[int], /, *, now: datetime) -> set[int]:
        self.kept.append(list(row_ids))
        return {i for i in row_ids if self.row(i).state == "sending" and i not in self.taken_over}

    async def mark_sent(self, row_id: int, /, *, ts: str | None, channel: str | None, at: datetime) -> bool:
        row = self.row(row_id)
        row.state, row.ts, row.channel = "sent", ts, channel
        self.sent.append(row_id)
        return True

    async def mark_retry(self, row_id: int, /, *, next_attempt_at: datetime, error: str) -> bool:
        row = self.row(row_id)
        row.state, row.next_attempt_at, row.error = "pending", next_attempt_at, error
        self.retries.append((row_id, next_attempt_at, error))
        return True

    async def mark_failed(self, row_id: int, /, *, error: str) -> bool:
        row = self.row(row_id)
        row.state, row.error = "failed", error
        self.failures.append((row_id, error))
        return True

    def states(self) -> dict[int, str]:
        return {row.id: row.state for row in self.rows}


@dataclass(slots=True)
class Clock:
    at: datetime = T0

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def line(n: int) -> dict[str, Any]:
    return {"run": "r1", "state": "running", "reason": f"message {n}"}


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandin]:
    async with SlackStandin() as standin:
        yield standin


@pytest.fixture
def outbox() -> FakeOutbox:
    return FakeOutbox()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def dispatcher_for(
    slack: SlackStandin,
    outbox: OutboxPort,
    *,
    concurrency: int = 8,
    policy: RetryPolicy = FAST,
    timeout: int = 5,
) -> Dispatcher:
    client = make_client(token=slack.token, base_url=slack.base_url, timeout=timeout)
    return Dispatcher(
        client=client, outbox=outbox, concurrency=concurrency, policy=policy, rng=random.Random(7)
    )


def texts(slack: SlackStandin, channel: str) -> list[str]:
    return [call.body["text"] for call in slack.posted_to(channel)]


# -- what goes where -------------------------------------------------------------------------


async def test_a_channel_message_is_posted_and_its_ts_and_channel_recorded(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    row = outbox.add(MessageKind.PACKET_POSTED, "C0WARROOM", {"run": "r1", "packet": packet()})

    report = await dispatcher_for(slack, outbox).drain(now_fn=clock.now)

    (call,) = slack.posted_to("C0WARROOM")
    assert call.body["text"].startswith("Packet v3 (proposed)")
    assert call.body["blocks"][0]["type"] == "header"
    assert (row.state, row.channel, row.ts) == ("sent", "C0WARROOM", call.answer["ts"])
    assert report.sent == 1 and report.failed == report.retried == 0


async def test_a_dm_is_posted_with_the_user_id_as_channel_and_no_conversations_open(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    row = outbox.add(MessageKind.DELTA_DM, "U0REL2", SAMPLES[MessageKind.DELTA_DM])

    await dispatcher_for(slack, outbox).drain(now_fn=clock.now)

    (call,) = slack.posted_to("U0REL2")
    assert call.body["channel"] == "U0REL2"
    assert slack.calls("conversations.open") == []
    assert row.state == "sent" and row.channel is not None and row.channel.startswith("D")


async def test_a_superseded_packet_is_updated_in_place_with_the_stored_ts(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    dispatcher = dispatcher_for(slack, outbox)
    v2 = outbox.add(
        MessageKind.PACKET_POSTED,
        "C0WARROOM",
        {"run": "r1", "packet": packet(version=2, state="authoritative")},
    )
    await dispatcher.drain(now_fn=clock.now)
    assert v2.ts is not None and v2.channel is not None

    outbox.add(
        MessageKind.PACKET_SUPERSEDED,
        "C0WARROOM",
        {"run": "r1", "version": 2, "superseded_by": 3, "target": {"channel": v2.channel, "ts": v2.ts}},
    )
    await dispatcher.drain(now_fn=clock.now)

    (update,) = slack.calls("chat.update")
    assert (update.body["channel"], update.body["ts"]) == ("C0WARROOM", v2.ts)
    assert len(slack.posted_to("C0WARROOM")) == 1  # updated, not posted again
    message = slack.message("C0WARROOM", v2.ts)
    assert message.text == "Packet v2 superseded by v3"
    assert not [b for b in message.blocks if b["type"] == "actions" or "accessory" in b]


async def test_a_superseded_packet_queued_before_v2_was_sent_finds_v2s_message_at_send_time(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    async def find_target(row: Any) -> Mapping[str, Any] | None:
        posted = [
            r
            for r in outbox.rows
            if r.kind == MessageKind.PACKET_POSTED
            and r.payload["packet"]["version"] == row.payload["version"]
        ]
        return {"channel": posted[0].channel, "ts": posted[0].ts} if posted and posted[0].ts else None

    client = make_client(token=slack.token, base_url=slack.base_url)
    dispatcher = Dispatcher(client=client, outbox=outbox, policy=FAST, find_target=find_target)
    v2 = outbox.add(MessageKind.PACKET_POSTED, "C0WARROOM", {"run": "r1", "packet": packet(version=2)})
    outbox.add(MessageKind.PACKET_SUPERSEDED, "C0WARROOM", {"run": "r1", "version": 2, "superseded_by": 3})

    await dispatcher.drain(now_fn=clock.now)

    (update,) = slack.calls("chat.update")
    assert update.body["ts"] == v2.ts
    assert set(outbox.states().values()) == {"sent"}


async def test_a_superseded_packet_without_a_target_fails_rather_than_posting_a_new_message(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    row = outbox.add(
        MessageKind.PACKET_SUPERSEDED, "C0WARROOM", {"run": "r1", "version": 2, "superseded_by": 3}
    )

    await dispatcher_for(slack, outbox).drain(now_fn=clock.now)

    assert row.state == "failed" and "target" in (row.error or "")
    assert slack.calls() == []


async def test_an_ephemeral_goes_to_the_user_in_the_channel_and_the_home_view_is_published(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    from tests.test_render import HOME

    refusal = outbox.add(MessageKind.REFUSAL, "U0ENG1", SAMPLES[MessageKind.REFUSAL])
    home = outbox.add(MessageKind.HOME_VIEW, "U0REL1", HOME)

    await dispatcher_for(slack, outbox).drain(now_fn=clock.now)

    (ephemeral,) = slack.calls("chat.postEphemeral")
    assert (ephemeral.body["channel"], ephemeral.body["user"]) == ("C0WARROOM", "U0ENG1")
    assert refusal.ts == ephemeral.answer["message_ts"]
    assert slack.views("U0REL1")[0]["type"] == "home"
    assert home.state == "sent"


# -- Slack pushing back ----------------------------------------------------------------------


async def test_a_429_is_waited_out_for_retry_after_and_nothing_is_lost(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    slack.rate_limit("chat.postMessage", per_second=2)
    for n in range(5):
        outbox.add(MessageKind.RUN_STATE, f"C{n}", line(n))

    report = await dispatcher_for(slack, outbox).drain(now_fn=clock.now)

    assert report.sent == 5 and outbox.states() == dict.fromkeys(range(1, 6), "sent")
    assert sorted(c.body["channel"] for c in slack.calls("chat.postMessage") if c.ok) == [
        f"C{n}" for n in range(5)
    ]
    calls = slack.calls("chat.postMessage")
    limited = [c for c in calls if c.status == 429]
    assert limited, "the stand-in never rate limited: the test proves nothing"
    for refusal in limited:
        retry = next(c for c in calls if c.body["channel"] == refusal.body["channel"] and c.at > refusal.at)
        assert retry.at >= refusal.at + float(refusal.headers["Retry-After"]) - 0.01


async def test_a_rate_limited_method_does_not_hold_back_another_method(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    slack.fail_next("chat.postMessage", status=429, times=1, headers={"Retry-After": "1"})
    outbox.add(MessageKind.RUN_STATE, "C1", line(1))
    outbox.add(MessageKind.REPLY, "U0ENG1", {"text": "only you", "channel": "C2"})

    await dispatcher_for(slack, outbox).drain(now_fn=clock.now)

    (ephemeral,) = slack.calls("chat.postEphemeral")
    posted = [c for c in slack.calls("chat.postMessage") if c.ok]
    assert ephemeral.at < posted[0].at  # answered while chat.postMessage was still waiting
    assert posted[0].at - slack.calls("chat.postMessage")[0].at >= 0.95


async def test_a_long_retry_after_leaves_the_row_pending_instead_of_holding_the_drain(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    slack.fail_next("chat.postMessage", status=429, times=1, headers={"Retry-After": "120"})
    first = outbox.add(MessageKind.RUN_STATE, "C1", line(1))
    second = outbox.add(MessageKind.RUN_STATE, "C2", line(2))
    client = make_client(token=slack.token, base_url=slack.base_url)
    # Its sense of elapsed time follows the test clock, so two minutes pass in no time.
    dispatcher = Dispatcher(
        client=client,
        outbox=outbox,
        concurrency=1,
        policy=FAST,
        monotonic=lambda: (clock.at - T0).total_seconds(),
    )

    report = await asyncio.wait_for(dispatcher.drain(now_fn=clock.now), timeout=30)

    assert report.sent == 0 and report.retried == 2
    assert all(r.next_attempt_at >= T0 + timedelta(seconds=119) for r in (first, second))
    assert "rate limited on chat.postMessage" in (first.error or "")
    assert len(slack.calls("chat.postMessage")) == 1  # the second row did not even try

    clock.advance(121)
    assert (await dispatcher.drain(now_fn=clock.now)).sent == 2


async def test_slack_down_for_a_while_then_back_delivers_every_message_exactly_once_in_order(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    for n in range(3):
        outbox.add(MessageKind.RUN_STATE, "C0WARROOM", line(n))
        outbox.add(MessageKind.DELTA_DM, "U0REL2", {**SAMPLES[MessageKind.DELTA_DM], "version": 10 + n})
    dispatcher = dispatcher_for(slack, outbox)
    slack.down()

    outage = await dispatcher.drain(now_fn=clock.now)
    assert outage.sent == 0 and outage.failed == 0
    assert outage.retried + outage.deferred == 6
    assert set(outbox.states().values()) == {"pending"}
    clock.advance(1)
    assert (await dispatcher.drain(now_fn=clock.now)).sent == 0  # not due yet: no hammering

    clock.advance(90)
    await dispatcher.drain(now_fn=clock.now)  # still down
    slack.up()
    clock.advance(600)
    recovered = await dispatcher.drain(now_fn=clock.now)

    assert recovered.sent == 6
    assert set(outbox.states().values()) == {"sent"}
    assert texts(slack, "C0WARROOM") == [f"Run r1: running: message {n}" for n in range(3)]
    assert [c.body["text"] for c in slack.posted_to("U0REL2")] == [
        f"Packet v{10 + n} changes 3 of your checkpoints" for n in range(3)
    ]


async def test_a_slack_that_keeps_failing_is_called_a_handful_of_times_a_drain_not_for_every_row(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    for n in range(40):
        outbox.add(MessageKind.DELTA_DM, f"U0P{n:04d}", {**SAMPLES[MessageKind.DELTA_DM], "version": n})
    dispatcher = dispatcher_for(slack, outbox, concurrency=1)
    slack.down()

    first = await dispatcher.drain(now_fn=clock.now)

    # Without the breaker: 40 rows x 3 attempts. With it: the failures in a row that open it.
    assert len(slack.calls()) == FAST.breaker_failures
    assert first.sent == 0 and set(outbox.states().values()) == {"pending"}
    assert any("kept failing" in (row.error or "") for row in outbox.rows)

    clock.advance(3600)
    before = len(slack.calls())
    await dispatcher.drain(now_fn=clock.now)
    assert len(slack.calls()) - before == 1, "a later drain probes once, and the probe fails"

    slack.up()
    clock.advance(3600)
    recovered = await dispatcher.drain(now_fn=clock.now)
    assert recovered.sent == 40 and set(outbox.states().values()) == {"sent"}


async def test_callers_waiting_on_a_probe_go_as_soon_as_it_is_answered(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    for n in range(FAST.breaker_failures):
        outbox.add(MessageKind.DELTA_DM, f"U0P{n:04d}", {**SAMPLES[MessageKind.DELTA_DM], "version": n})
    dispatcher = dispatcher_for(slack, outbox, concurrency=8)
    slack.fail_next("chat.postMessage", status=503, times=FAST.breaker_failures * FAST.attempts_per_round)
    await dispatcher.drain(now_fn=clock.now)
    assert set(outbox.states().values()) == {"pending"}
    slack.clear_faults()
    for n in range(20):
        outbox.add(MessageKind.DELTA_DM, f"U1P{n:04d}", {**SAMPLES[MessageKind.DELTA_DM], "version": n})

    clock.advance(3600)
    recovered = await dispatcher.drain(now_fn=clock.now)

    # One probe answered, then the 24 others went in the same drain, none held to a later round.
    assert recovered.sent == 25 and recovered.retried == 0
    assert [c.status for c in slack.calls("chat.postMessage")][-25:] == [200] * 25


async def test_a_brief_burst_of_503s_is_retried_inside_the_round(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    slack.fail_next("chat.postMessage", status=503, times=2)
    row = outbox.add(MessageKind.RUN_STATE, "C1", line(1))

    report = await dispatcher_for(slack, outbox).drain(now_fn=clock.now)

    assert report.sent == 1 and row.state == "sent"
    assert [c.status for c in slack.calls("chat.postMessage")] == [503, 503, 200]
    assert len(slack.posted_to("C1")) == 1


async def test_a_row_stuck_on_one_recipient_holds_back_only_that_recipients_later_rows(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    slack.fail_next("chat.postMessage", status=500, times=1000, channel="C0STUCK")
    first = outbox.add(MessageKind.RUN_STATE, "C0STUCK", line(1))
    second = outbox.add(MessageKind.RUN_STATE, "C0STUCK", {**line(2), "state": "paused"})
    other = outbox.add(MessageKind.RUN_STATE, "C0FINE", line(3))
    dispatcher = dispatcher_for(slack, outbox)

    report = await dispatcher.drain(now_fn=clock.now)

    assert (first.state, second.state, other.state) == ("pending", "pending", "sent")
    assert report.retried == 1 and report.deferred == 1
    assert "waiting behind outbox row 1" in (second.error or "")
    assert [c.body["text"] for c in slack.calls("chat.postMessage") if c.body["channel"] == "C0STUCK"] == [
        "Run r1: running: message 1"
    ] * FAST.attempts_per_round

    slack.clear_faults()
    clock.advance(120)
    await dispatcher.drain(now_fn=clock.now)

    assert texts(slack, "C0STUCK") == ["Run r1: running: message 1", "Run r1: paused: message 2"]


async def test_a_network_error_leaves_the_row_pending(outbox: FakeOutbox, clock: Clock) -> None:
    async with SlackStandin() as gone:
        base_url = gone.base_url  # the port is closed once the stand-in stops
    client = make_client(token="xoxb-x", base_url=base_url, timeout=2)
    row = outbox.add(MessageKind.RUN_STATE, "C1", line(1))

    report = await Dispatcher(client=client, outbox=outbox, policy=FAST).drain(now_fn=clock.now)

    assert report.retried == 1 and row.state == "pending"
    assert "network error" in (row.error or "")
    assert row.next_attempt_at > T0


# -- permanent errors ------------------------------------------------------------------------


async def test_a_permanent_slack_error_marks_the_row_failed_with_the_error_and_others_go_on(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    slack.reject_channel("C0ARCHIVED", "is_archived")
    doomed = outbox.add(MessageKind.RUN_STATE, "C0ARCHIVED", line(1))
    fine = outbox.add(MessageKind.RUN_STATE, "C0WARROOM", line(2))
    slack_channel_missing = outbox.add(MessageKind.RUN_STATE, "#no-such-channel", line(3))

    report = await dispatcher_for(slack, outbox).drain(now_fn=clock.now)

    assert report.failed == 2 and report.sent == 1
    assert doomed.state == "failed" and doomed.error == "chat.postMessage: is_archived"
    assert slack_channel_missing.error == "chat.postMessage: channel_not_found"
    assert fine.state == "sent"
    assert len(slack.calls("chat.postMessage")) == 3  # refused at once, not retried


async def test_invalid_blocks_is_tried_once_more_compact_then_sent(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    slack.error_next("chat.postMessage", "msg_blocks_too_long")
    row = outbox.add(MessageKind.PACKET_POSTED, "C1", {"run": "r1", "packet": packet(checkpoints=200)})

    await dispatcher_for(slack, outbox).drain(now_fn=clock.now)

    first, second = slack.calls("chat.postMessage")
    assert row.state == "sent"
    assert len(str(second.body["blocks"])) < len(str(first.body["blocks"]))


async def test_invalid_blocks_twice_marks_the_row_failed(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    slack.error_next("chat.postMessage", "invalid_blocks", times=2)
    row = outbox.add(MessageKind.RUN_STATE, "C1", line(1))

    await dispatcher_for(slack, outbox).drain(now_fn=clock.now)

    assert row.state == "failed" and row.error == "chat.postMessage: invalid_blocks"
    assert len(slack.calls("chat.postMessage")) == 2


async def test_a_row_that_cannot_be_rendered_is_failed_without_calling_slack(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    broken = outbox.add(MessageKind.HOLD_OPENED, "C1", {"run": "r1"})
    unknown = FakeRow(id=2, kind="carrier_pigeon", recipient="C1", payload={})
    outbox.rows.append(unknown)

    await dispatcher_for(slack, outbox).drain(now_fn=clock.now)

    assert broken.state == unknown.state == "failed"
    assert (broken.error or "").startswith("render_failed:")
    assert slack.calls() == []


# -- concurrency and order -------------------------------------------------------------------


async def test_rows_to_one_recipient_go_in_claim_order_and_in_flight_requests_are_bounded(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    slack.slow(0.05)
    for n in range(6):
        outbox.add(MessageKind.RUN_STATE, "U0ENG1", {**line(n), "state": f"step-{n}"})
    for n in range(12):
        outbox.add(MessageKind.RUN_STATE, f"C{n}", line(n))

    await dispatcher_for(slack, outbox, concurrency=3).drain(now_fn=clock.now)

    assert texts(slack, "U0ENG1") == [f"Run r1: step-{n}: message {n}" for n in range(6)]
    assert set(outbox.states().values()) == {"sent"}
    assert 1 < slack.max_in_flight <= 3


async def test_drain_once_claims_one_batch_and_until_empty_claims_until_nothing_is_due(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    for n in range(5):
        outbox.add(MessageKind.RUN_STATE, f"C{n}", line(n))
    client = make_client(token=slack.token, base_url=slack.base_url)
    dispatcher = Dispatcher(client=client, outbox=outbox, batch_size=2, policy=FAST)

    once = await dispatcher.drain(now_fn=clock.now, until_empty=False)
    rest = await dispatcher.drain(now_fn=clock.now, until_empty=True)

    assert (once.sent, rest.sent) == (2, 3)
    assert outbox.claims == [[1, 2], [3, 4], [5], []]


async def test_run_forever_sends_when_nudged_and_stops_when_asked(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    dispatcher = dispatcher_for(slack, outbox)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run_forever(stop, now_fn=clock.now, poll_interval=30))
    await asyncio.sleep(0.05)

    outbox.add(MessageKind.RUN_STATE, "C1", line(1))
    dispatcher.nudge()
    for _ in range(1500):  # up to 30 s: a loaded CI machine is slow, never wrong
        if slack.posted_to("C1"):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, timeout=30)

    assert len(slack.posted_to("C1")) == 1


async def test_run_forever_survives_an_outbox_that_fails(slack: SlackStandin, clock: Clock) -> None:
    third_try = asyncio.Event()

    class BrokenOutbox(FakeOutbox):
        async def claim(self, *, now: datetime, limit: int) -> Sequence[FakeRow]:
            self.claims.append([])
            if len(self.claims) == 3:
                third_try.set()
            raise ConnectionError("database went away")

    broken = BrokenOutbox()
    dispatcher = dispatcher_for(slack, broken)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run_forever(stop, now_fn=clock.now, poll_interval=0.01))
    # Waits for the behaviour, not for a fixed time: a loaded machine only makes it slower.
    await asyncio.wait_for(third_try.wait(), timeout=30)
    stop.set()
    await asyncio.wait_for(task, timeout=30)

    assert len(broken.claims) >= 3 and task.exception() is None  # kept trying, never crashed


# -- the client ------------------------------------------------------------------------------


def test_slack_sdks_default_retries_only_a_dropped_connection_and_make_client_has_none() -> None:
    (default,) = AsyncWebClient(token="xoxb-x").retry_handlers

    assert isinstance(default, AsyncConnectionErrorRetryHandler)
    assert make_client(token="xoxb-x").retry_handlers == []


def test_a_client_that_retries_429_itself_is_refused(outbox: FakeOutbox) -> None:
    client = AsyncWebClient(token="xoxb-x", retry_handlers=[AsyncRateLimitErrorRetryHandler()])

    with pytest.raises(ValueError, match="429"):
        Dispatcher(client=client, outbox=outbox)


async def test_a_configured_rate_keeps_a_fan_out_under_slacks_limit_without_a_single_429(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    slack.rate_limit("chat.postMessage", per_second=20)
    for n in range(30):
        outbox.add(MessageKind.RUN_STATE, f"U{n:03d}", line(n))
    client = make_client(token=slack.token, base_url=slack.base_url)
    dispatcher = Dispatcher(client=client, outbox=outbox, policy=FAST, rates={"chat.postMessage": 19})

    report = await asyncio.wait_for(dispatcher.drain(now_fn=clock.now), timeout=20)

    assert report.sent == 30
    assert [c for c in slack.calls("chat.postMessage") if c.status == 429] == []


async def test_after_one_429_the_dispatcher_paces_itself_at_the_rate_slack_let_through(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    slack.rate_limit("chat.postMessage", per_second=20)
    for n in range(60):
        outbox.add(MessageKind.RUN_STATE, f"U{n:03d}", line(n))

    report = await asyncio.wait_for(dispatcher_for(slack, outbox).drain(now_fn=clock.now), timeout=30)

    assert report.sent == 60
    refusals = [c for c in slack.calls("chat.postMessage") if c.status == 429]
    # Without pacing every one-second window would end in a burst of refusals; with it the first
    # burst's refusals (all in flight at once, at most the concurrency) are the only ones.
    assert 1 <= len(refusals) <= 8


async def test_a_lane_stops_at_a_row_another_dispatcher_claimed_after_the_lease_passed(
    slack: SlackStandin, outbox: FakeOutbox, clock: Clock
) -> None:
    first, second, third = (outbox.add(MessageKind.RUN_STATE, "U0ENG1", line(n)) for n in (1, 2, 3))
    outbox.add(MessageKind.RUN_STATE, "U0SEC1", line(4))
    outbox.taken_over = {second.id, third.id}

    report = await dispatcher_for(slack, outbox).drain(now_fn=clock.now, until_empty=False)

    # The row before the hand-over goes; the rest are the other dispatcher's to send, in order.
    assert len(slack.posted_to("U0ENG1")) == 1 and first.state == "sent"
    assert len(slack.posted_to("U0SEC1")) == 1
    assert (second.state, third.state) == ("sending", "sending")
    assert (report.sent, report.handed_over) == (2, 1)
    assert [first.id, second.id, third.id] in outbox.kept
