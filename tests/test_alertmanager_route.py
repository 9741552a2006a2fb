"""`POST /alertmanager`: Alertmanager's webhook, checked at the door, counted before the 200."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.alertmanager import authorized, firing_alerts, route
from handlers.alerts import AlertsOutcome
from handlers.commands import AlertFired
from handlers.outcome import Outcome
from tests.bot_harness import BRIDGE, BotHarness, bot_world, serving

TOKEN = "am-7c1f0b9e4d2a"
ENG1, REL1, RISK1, DBA1 = "U0ENG1", "U0REL1", "U0RISK1", "U0DBA1"


def payload(*alerts: dict[str, Any], version: str = "4") -> dict[str, Any]:
    """A webhook body as Alertmanager 0.25 sends it."""
    return {
        "receiver": "cutover-bot",
        "status": "firing",
        "alerts": list(alerts),
        "groupLabels": {"alertname": "OrderWriteErrors"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "version": version,
        "groupKey": '{}:{alertname="OrderWriteErrors"}',
        "truncatedAlerts": 0,
    }


def an_alert(
    *, status: str = "firing", plan: str = "bridge", gate: str = "error-rate", **notes: str
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "OrderWriteErrors", "cutover_plan": plan, "cutover_gate": gate},
        "annotations": {"summary": "order writes failing", **notes},
        "startsAt": "2026-11-25T02:40:03.157076123Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": "1a30ba71cca2921f",
    }


# -- the door, without a database -----------------------------------------------------------------


class Counting:
    def __init__(self, *, fail: bool = False) -> None:
        self.seen: list[AlertFired] = []
        self.fail = fail

    async def __call__(self, alert: AlertFired) -> AlertsOutcome:
        if self.fail:
            raise ConnectionError("database unreachable")
        self.seen.append(alert)
        return AlertsOutcome(alert=alert, runs=(Outcome.done("counted", counted=True),))


@pytest.fixture
async def door() -> AsyncIterator[tuple[str, Counting, Counting]]:
    counting, failing = Counting(), Counting(fail=True)
    app = web.Application()
    app.add_routes(
        [
            web.post("/alertmanager", route(token=TOKEN, count=counting)),
            web.post("/failing", route(token=TOKEN, count=failing)),
            web.post("/untokened", route(token="", count=counting)),
        ]
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", counting, failing
    finally:
        await runner.cleanup()


async def _post(url: str, body: bytes | str, *, token: str | None = TOKEN) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as response:
        return response.status, await response.json()


@pytest.mark.parametrize(
    ("path", "token"),
    [("/alertmanager", None), ("/alertmanager", "wrong"), ("/alertmanager", ""), ("/untokened", "")],
)
async def test_a_request_without_the_bearer_token_gets_401_and_counts_nothing(door, path, token):
    base, counting, _ = door

    status, body = await _post(base + path, json.dumps(payload(an_alert())), token=token)

    assert status == 401 and body == {"error": "unauthorized"}
    assert counting.seen == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps(payload(an_alert(), version="3")).encode(), "version"),
        (json.dumps({"version": "4", "alerts": {"a": 1}}).encode(), "no alerts list"),
        (json.dumps({"version": "4", "alerts": ["firing"]}).encode(), "not a JSON object"),
    ],
)
async def test_a_malformed_body_gets_400_naming_what_is_wrong_and_counts_nothing(door, body, says):
    base, counting, _ = door

    status, answer = await _post(base + "/alertmanager", body)

    assert status == 400 and says in answer["error"]
    assert counting.seen == []


async def test_resolved_and_unlabelled_alerts_count_as_nothing(door):
    base, counting, _ = door
    unlabelled = an_alert()
    unlabelled["labels"] = {"alertname": "DiskFull"}
    resolved = an_alert(status="resolved")

    status, answer = await _post(base + "/alertmanager", json.dumps(payload(resolved, unlabelled)))

    assert status == 200 and answer == {"alerts": 2, "firing": 0, "counted": 0}
    assert counting.seen == []


async def test_a_firing_alert_reaches_the_use_case_with_its_plan_gate_time_and_value(door):
    base, counting, _ = door

    status, answer = await _post(base + "/alertmanager", json.dumps(payload(an_alert(value="0.21"))))

    assert status == 200 and answer == {"alerts": 1, "firing": 1, "counted": 1}
    [seen] = counting.seen
    assert (seen.plan, seen.gate, seen.alert, seen.value) == (
        "bridge",
        "error-rate",
        "OrderWriteErrors",
        0.21,
    )
    assert seen.starts_at is not None and seen.starts_at.isoformat() == "2026-11-25T02:40:03.157076+00:00"
    assert seen.summary == "order writes failing"


async def test_when_the_store_fails_alertmanager_hears_503_to_retry_never_500(door):
    base, _, _ = door

    status, answer = await _post(base + "/failing", json.dumps(payload(an_alert())))

    assert status == 503 and "retry" in answer["error"]


def test_the_token_is_compared_whole_and_only_as_a_bearer_token():
    assert authorized(f"Bearer {TOKEN}", TOKEN) and authorized(f"bearer {TOKEN}", TOKEN)
    assert not authorized(f"Basic {TOKEN}", TOKEN)
    assert not authorized(f"Bearer {TOKEN[:-1]}", TOKEN)
    assert not authorized("Bearer ", "")


def test_an_alert_with_alertmanagers_zero_time_or_a_non_number_value_keeps_neither():
    alert = an_alert(value="NaN")
    alert["startsAt"] = "0001-01-01T00:00:00Z"
    [fired], total = firing_alerts(json.dumps(payload(alert)).encode())
    assert total == 1 and fired.starts_at is None and fired.value is None


# -- the served bot ------------------------------------------------------------------------------


@pytest.fixture
async def harness(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[BotHarness]:
    async with bot_world(tmp_path, sqlite_template) as factory:
        factory.settings = factory.settings.model_copy(
            update={"cutover_alertmanager_token": SecretStr(TOKEN)}
        )
        async with serving(factory) as served:
            yield served


async def _canary_soaking(h: BotHarness) -> str:
    assert (await h.command("open bridge", user=ENG1)).ok
    run = await h.run_in(BRIDGE)
    for user in (REL1, RISK1):
        assert (await h.command("signoff", user=user)).ok
    h.clock.advance(timedelta(minutes=5))
    assert (await h.command("start", user=ENG1)).ok
    h.clock.advance(timedelta(minutes=10))
    assert (await h.command("done drain-queue", user=ENG1)).ok
    assert (await h.command("done schema-check", user=DBA1)).ok
    reply = await h.command("release go-decision", user=REL1)
    assert reply.ok, reply.text
    await h.bot.scheduler.tick(run)  # check before moving: read, then shifted
    assert [(s.checkpoint, s.percent) for s in h.actuator.shifts] == [("canary", 5)]
    await h.drain()
    return run


async def test_a_firing_alert_on_the_served_bot_holds_the_run_before_the_200_and_the_room_is_told(harness):
    h = harness
    run = await _canary_soaking(h)
    posted = len(h.slack.messages(BRIDGE))
    url = h.url.replace("/slack/events", "/alertmanager")

    status, answer = await _post(url, json.dumps(payload(an_alert(value="0.2"))))

    assert status == 200 and answer["counted"] == 1
    kinds = await h.ledger_kinds(run)  # committed before the answer
    assert "alert_received" in kinds and "gate_failed" in kinds
    async with h.bot.uow.transaction(read_only=True) as tx:
        row = await tx.runs.get(run)
    assert row is not None and row.state == "held"
    await h.drain()
    told = [m.text for m in h.slack.messages(BRIDGE)[posted:]]
    assert any(t.startswith("Gate error-rate failed on canary") for t in told), told
