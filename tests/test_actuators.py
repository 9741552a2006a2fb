"""Actuators: the webhook against a local stand-in control plane that records and can refuse."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from bot.actuators import LogActuator, WebhookActuator, actuator_for, idempotency_key
from handlers.ports import ActuationResult, Shift
from packets.plan import Actuator
from packets.plan_load import load_plan
from tests.prometheus_harness import SilentServer, free_port


@dataclass(frozen=True)
class Call:
    path: str
    headers: dict[str, str]
    body: Any


class ControlPlane:
    """A traffic control plane stand-in: records each call, answers as scripted (200 by default)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._script: list[tuple[int, str] | None] = []  # None: never answer
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/traffic"

    def answer_next(self, status: int, body: str = "") -> None:
        self._script.append((status, body))

    def hang_next(self) -> None:
        self._script.append(None)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self._release.set()
        assert self._runner is not None
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        text = await request.text()
        self.calls.append(Call(request.path, dict(request.headers), json.loads(text) if text else None))
        scripted = self._script.pop(0) if self._script else (200, '{"accepted": true}')
        if scripted is None:
            await asyncio.wait_for(self._release.wait(), timeout=30)
            return web.Response(status=200)
        status, body = scripted
        return web.Response(status=status, text=body)


@pytest_asyncio.fixture
async def plane() -> AsyncIterator[ControlPlane]:
    running = ControlPlane()
    await running.start()
    yield running
    await running.stop()


def a_shift(**changes: Any) -> Shift:
    fields: dict[str, Any] = {
        "run": "run-7",
        "checkpoint": "canary-a",
        "cohort": "merchant-a",
        "percent": 1.0,
        "packet_version": 3,
    }
    fields.update(changes)
    return Shift(**fields, idempotency_key=idempotency_key(**fields))


async def test_a_2xx_answer_is_a_successful_shift(plane: ControlPlane) -> None:
    result = await WebhookActuator(plane.url, timeout=2.0).shift(a_shift())

    assert result == ActuationResult(True, 'HTTP 200: {"accepted": true}')


async def test_the_webhook_posts_every_field_of_the_shift_as_json(plane: ControlPlane) -> None:
    shift = a_shift()

    await WebhookActuator(plane.url, timeout=2.0).shift(shift)

    [call] = plane.calls
    assert call.path == "/traffic"
    assert call.body == {
        "run": "run-7",
        "checkpoint": "canary-a",
        "cohort": "merchant-a",
        "percent": 1.0,
        "packet_version": 3,
        "idempotency_key": shift.idempotency_key,
    }
    assert call.headers["Idempotency-Key"] == shift.idempotency_key
    assert call.headers["Content-Type"] == "application/json"


async def test_a_retry_of_the_same_shift_carries_the_same_idempotency_key(plane: ControlPlane) -> None:
    actuator = WebhookActuator(plane.url, timeout=2.0)
    plane.answer_next(503, "control plane busy")

    first = await actuator.shift(a_shift())
    retry = await actuator.shift(a_shift())

    assert (first.ok, retry.ok) == (False, True)
    assert plane.calls[0].headers["Idempotency-Key"] == plane.calls[1].headers["Idempotency-Key"]
    assert plane.calls[0].body == plane.calls[1].body


async def test_a_server_error_is_a_failed_shift_with_the_status_and_the_reason(plane: ControlPlane) -> None:
    plane.answer_next(500, "cohort router unavailable\n")

    result = await WebhookActuator(plane.url, timeout=2.0).shift(a_shift())

    assert result == ActuationResult(
        False, f"HTTP 500 from 127.0.0.1:{plane.port}: cohort router unavailable"
    )


async def test_a_conflict_is_a_failed_shift(plane: ControlPlane) -> None:
    plane.answer_next(409, '{"error": "cohort merchant-a is frozen"}')

    result = await WebhookActuator(plane.url, timeout=2.0).shift(a_shift())

    assert not result.ok
    assert result.detail.startswith("HTTP 409")
    assert "frozen" in result.detail


async def test_a_redirect_is_not_taken_for_an_acknowledgement(plane: ControlPlane) -> None:
    plane.answer_next(307)

    result = await WebhookActuator(plane.url, timeout=2.0).shift(a_shift())

    assert result == ActuationResult(False, f"HTTP 307 from 127.0.0.1:{plane.port}")
    assert len(plane.calls) == 1


async def test_a_long_refusal_body_is_cut_short(plane: ControlPlane) -> None:
    plane.answer_next(400, "x" * 5000)

    result = await WebhookActuator(plane.url, timeout=2.0).shift(a_shift())

    assert not result.ok and len(result.detail) < 300


async def test_a_control_plane_that_does_not_answer_in_time_is_a_failed_shift(plane: ControlPlane) -> None:
    plane.hang_next()

    result = await WebhookActuator(plane.url, timeout=0.3).shift(a_shift())

    assert result == ActuationResult(False, f"timeout after 0.3s waiting for 127.0.0.1:{plane.port}")
    assert len(plane.calls) == 1


async def test_a_silent_socket_is_a_timeout_too() -> None:
    async with SilentServer() as silent:
        result = await WebhookActuator(silent.url, timeout=0.3).shift(a_shift())

    assert result == ActuationResult(False, f"timeout after 0.3s waiting for 127.0.0.1:{silent.port}")


async def test_nobody_listening_is_a_failed_shift_connection_refused() -> None:
    port = free_port()

    result = await WebhookActuator(f"http://127.0.0.1:{port}/traffic", timeout=1.0).shift(a_shift())

    assert result == ActuationResult(False, f"connection refused to 127.0.0.1:{port}")


async def test_credentials_in_the_url_go_in_a_header_never_in_a_detail(plane: ControlPlane) -> None:
    url = f"http://deploy:t0ps3cret@127.0.0.1:{plane.port}/traffic"
    plane.answer_next(500, "nope")

    result = await WebhookActuator(url, timeout=2.0).shift(a_shift())

    assert "t0ps3cret" not in result.detail and "deploy" not in result.detail
    assert plane.calls[0].headers["Authorization"].startswith("Basic ")


async def test_extra_headers_are_sent_with_every_shift(plane: ControlPlane) -> None:
    actuator = WebhookActuator(plane.url, timeout=2.0, headers={"X-Change-Record": "CHG-20418"})

    await actuator.shift(a_shift())

    assert plane.calls[0].headers["X-Change-Record"] == "CHG-20418"


def test_the_idempotency_key_depends_only_on_what_identifies_the_shift() -> None:
    base = a_shift()

    assert a_shift().idempotency_key == base.idempotency_key
    assert a_shift(percent=1).idempotency_key == base.idempotency_key
    assert base.idempotency_key.startswith("cutover-")
    changed = [
        a_shift(run="run-8"),
        a_shift(checkpoint="widen"),
        a_shift(cohort="merchant-b"),
        a_shift(percent=5.0),
        a_shift(packet_version=4),
    ]
    assert len({s.idempotency_key for s in changed} | {base.idempotency_key}) == 6


def test_a_deliberate_reissue_after_a_rollback_can_get_a_new_key() -> None:
    def key(attempt: int | None = None) -> str:
        return idempotency_key(
            run="r", checkpoint="c", cohort="k", percent=1.0, packet_version=1, attempt=attempt
        )

    assert key(attempt=2) != key()
    assert key(attempt=2) == key(attempt=2)


async def test_the_log_actuator_records_each_shift_and_succeeds() -> None:
    actuator = LogActuator()
    shifts = [a_shift(), a_shift(percent=5.0)]

    results = [await actuator.shift(s) for s in shifts]

    assert actuator.shifts == shifts
    assert [r.ok for r in results] == [True, True]
    assert results[1].detail == "logged: merchant-a to 5%"


PLAN = """\
plan: p
title: t
channel: C1
window: {{start: 2026-11-24T21:00:00-05:00, end: 2026-11-25T01:00:00-05:00}}
roles: {{release-eng: {{primary: U1}}}}
authority: {{signoff: [release-eng], adopt_packets: [release-eng], start_and_rollback: [release-eng]}}
{actuator}
checkpoints:
  - {{id: canary-a, title: Canary, owner: release-eng, traffic: {{percent: 1, cohort: merchant-a}}}}
"""


async def test_the_factory_builds_the_webhook_the_plan_names(plane: ControlPlane) -> None:
    plan = load_plan(PLAN.format(actuator=f"actuator: {{kind: webhook, url: '{plane.url}', timeout: 3s}}"))

    actuator = actuator_for(plan)
    result = await actuator.shift(a_shift())

    assert isinstance(actuator, WebhookActuator)
    assert result.ok and len(plane.calls) == 1


def test_the_factory_builds_a_log_actuator_by_default() -> None:
    assert isinstance(actuator_for(load_plan(PLAN.format(actuator=""))), LogActuator)


def test_the_factory_refuses_a_webhook_without_a_url() -> None:
    # The plan checks refuse this in a file; a plan built in code can still get here.
    no_url = load_plan(PLAN.format(actuator="")).model_copy(update={"actuator": Actuator(kind="webhook")})

    with pytest.raises(ValueError, match="needs a url"):
        actuator_for(no_url)
