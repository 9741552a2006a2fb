"""PrometheusTelemetry against a real Prometheus scraping an exporter the tests control.

One Prometheus for the module (it takes about a second to start and scrape); every test uses its
own metric names so the order of tests does not matter. A few edge cases Prometheus itself will
not produce (HTML error pages, malformed bodies) come from a canned local server instead.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from bot.telemetry.prometheus import PrometheusTelemetry
from handlers.ports import Measurement
from packets.gates import GateResult, GateSpec, Outcome, evaluate
from tests.prometheus_harness import PrometheusStack, SilentServer, free_port, running_prometheus

pytestmark = [pytest.mark.prometheus, pytest.mark.asyncio(loop_scope="module")]

NOW = datetime.now(UTC)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PrometheusStack]:
    async with running_prometheus(tmp_path_factory.mktemp("prometheus")) as running:
        yield running


def judged(reading: Measurement, rule: str) -> GateResult:
    """The reading through the domain's gate evaluation, as the engine will judge it."""
    return evaluate(reading.value, GateSpec.parse(rule), gate="g", why_missing=reading.reason)


async def measure(url: str, query: str, *, timeout: float = 2.0, **options: Any) -> Measurement:
    return await PrometheusTelemetry(url, timeout=timeout, **options).measure(gate="g", query=query, at=NOW)


# --- pass, fail and no-data as the exporter says -------------------------------------------------


async def test_a_healthy_ratio_is_read_as_its_value_and_passes_its_gate(stack: PrometheusStack) -> None:
    stack.exporter.set("cutover_auth_success_ratio", 0.999)
    await stack.prometheus.wait_for_value("cutover_auth_success_ratio", 0.999)

    reading = await measure(stack.url, "cutover_auth_success_ratio")

    assert reading == Measurement(0.999, "")
    assert judged(reading, ">= 0.995").outcome is Outcome.PASS


async def test_a_ratio_below_its_threshold_fails_its_gate(stack: PrometheusStack) -> None:
    stack.exporter.set("cutover_settlement_parity", 0.97)
    await stack.prometheus.wait_for_value("cutover_settlement_parity", 0.97)

    reading = await measure(stack.url, "cutover_settlement_parity")

    assert reading.value == 0.97
    assert judged(reading, ">= 0.999").outcome is Outcome.FAIL
    assert judged(reading, ">= 0.999").reason == "0.97 is not >= 0.999"


async def test_a_gate_follows_the_exporter_from_pass_to_fail(stack: PrometheusStack) -> None:
    stack.exporter.set("cutover_lookup_latency_p95_seconds", 0.12)
    await stack.prometheus.wait_for_value("cutover_lookup_latency_p95_seconds", 0.12)
    before = await measure(stack.url, "cutover_lookup_latency_p95_seconds")

    stack.exporter.set("cutover_lookup_latency_p95_seconds", 0.31)
    await stack.prometheus.wait_for_value("cutover_lookup_latency_p95_seconds", 0.31)
    after = await measure(stack.url, "cutover_lookup_latency_p95_seconds")

    assert judged(before, "<= 0.25").outcome is Outcome.PASS
    assert judged(after, "<= 0.25").outcome is Outcome.FAIL


async def test_a_metric_that_disappears_makes_its_gate_no_data(stack: PrometheusStack) -> None:
    stack.exporter.set("cutover_fallback_health", 1)
    await stack.prometheus.wait_for_value("cutover_fallback_health", 1)
    stack.exporter.remove("cutover_fallback_health")
    await stack.prometheus.wait_for_series("cutover_fallback_health", 0)

    reading = await measure(stack.url, "cutover_fallback_health")

    assert reading == Measurement(None, "no series returned")
    assert judged(reading, ">= 1").outcome is Outcome.NO_DATA
    assert judged(reading, ">= 1").reason.startswith("no series returned; ")


async def test_a_query_returning_several_series_is_no_data(stack: PrometheusStack) -> None:
    for region in ("eu", "us", "ap"):
        stack.exporter.set("cutover_region_success_ratio", 0.999, region=region)
    await stack.prometheus.wait_for_series("cutover_region_success_ratio", 3)

    reading = await measure(stack.url, "cutover_region_success_ratio")

    assert reading == Measurement(None, "3 series returned; a gate needs one")


async def test_aggregating_several_series_into_one_gives_a_value(stack: PrometheusStack) -> None:
    stack.exporter.set("cutover_shard_errors", 2, shard="a")
    stack.exporter.set("cutover_shard_errors", 3, shard="b")
    await stack.prometheus.wait_for_value("sum(cutover_shard_errors)", 5)

    assert await measure(stack.url, "sum(cutover_shard_errors)") == Measurement(5.0, "")


async def test_a_scalar_result_is_read_as_its_value(stack: PrometheusStack) -> None:
    stack.exporter.set("cutover_scalar_source", 0.42)
    await stack.prometheus.wait_for_value("cutover_scalar_source", 0.42)

    assert await measure(stack.url, "scalar(cutover_scalar_source)") == Measurement(0.42, "")


async def test_a_nan_value_is_no_data(stack: PrometheusStack) -> None:
    stack.exporter.set("cutover_empty_ratio", float("nan"))
    await stack.prometheus.wait_until(
        "cutover_empty_ratio", lambda r: len(r["data"]["result"]) == 1, what="the NaN sample"
    )

    reading = await measure(stack.url, "cutover_empty_ratio")

    assert reading.value is None
    assert reading.reason == "series cutover_empty_ratio is NaN; a gate needs a finite number"


async def test_an_infinite_scalar_is_no_data(stack: PrometheusStack) -> None:
    reading = await measure(stack.url, "scalar(vector(1)) / 0")

    assert reading == Measurement(None, "scalar is +Inf; a gate needs a finite number")


async def test_a_range_query_is_no_data(stack: PrometheusStack) -> None:
    stack.exporter.set("cutover_range_source", 1)
    await stack.prometheus.wait_for_value("cutover_range_source", 1)

    reading = await measure(stack.url, "cutover_range_source[1m]")

    assert reading == Measurement(None, "query returned a range (matrix); a gate needs an instant value")


async def test_a_string_result_is_no_data(stack: PrometheusStack) -> None:
    reading = await measure(stack.url, '"healthy"')

    assert reading == Measurement(None, "query returned a string; a gate needs a number")


async def test_bad_promql_is_no_data_with_prometheus_own_error(stack: PrometheusStack) -> None:
    reading = await measure(stack.url, "sum(cutover_auth_success_ratio")

    assert reading.value is None
    assert reading.reason.startswith("prometheus error bad_data: ")
    assert "parse error" in reading.reason


# --- evaluation time ------------------------------------------------------------------------------


async def test_by_default_prometheus_evaluates_at_its_own_now_whatever_at_says(
    stack: PrometheusStack,
) -> None:
    stack.exporter.set("cutover_time_probe", 7)
    await stack.prometheus.wait_for_value("cutover_time_probe", 7)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)

    reading = await PrometheusTelemetry(stack.url, timeout=2.0).measure(
        gate="g", query="cutover_time_probe", at=an_hour_ago
    )

    assert reading == Measurement(7.0, "")


async def test_a_pinned_time_evaluates_the_query_at_that_moment(stack: PrometheusStack) -> None:
    stack.exporter.set("cutover_time_probe_pinned", 7)
    await stack.prometheus.wait_for_value("cutover_time_probe_pinned", 7)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    telemetry = PrometheusTelemetry(stack.url, timeout=2.0, pin_time=True)

    then = await telemetry.measure(gate="g", query="cutover_time_probe_pinned", at=an_hour_ago)
    now = await telemetry.measure(gate="g", query="cutover_time_probe_pinned", at=datetime.now(UTC))

    assert then == Measurement(None, "no series returned")
    assert now == Measurement(7.0, "")


async def test_a_base_url_with_a_trailing_slash_works(stack: PrometheusStack) -> None:
    assert await measure(stack.url + "/", "vector(3)") == Measurement(3.0, "")


# --- Prometheus unreachable, slow or strange ------------------------------------------------------


async def test_nobody_listening_is_no_data_connection_refused() -> None:
    port = free_port()

    reading = await measure(f"http://127.0.0.1:{port}", "up")

    assert reading == Measurement(None, f"connection refused to 127.0.0.1:{port}")


async def test_a_prometheus_that_never_answers_is_no_data_after_the_timeout() -> None:
    async with SilentServer() as silent:
        reading = await measure(silent.url, "up", timeout=0.3)

    assert reading == Measurement(
        None, f"timeout after 0.3s waiting for prometheus at 127.0.0.1:{silent.port}"
    )
    assert silent.connections == 1


async def test_credentials_in_the_url_never_appear_in_a_reason() -> None:
    port = free_port()

    reading = await measure(f"http://admin:hunter2@127.0.0.1:{port}", "up")

    assert reading.value is None
    assert "hunter2" not in reading.reason and "admin" not in reading.reason


async def test_credentials_in_the_url_are_sent_as_basic_auth_and_not_in_the_path() -> None:
    async with CannedPrometheus(200, _vector(1.5)) as canned:
        reading = await measure(f"http://ops:s3cret@127.0.0.1:{canned.port}/prom", "up")

    assert reading == Measurement(1.5, "")
    [request] = canned.requests
    assert request["path"] == "/prom/api/v1/query"
    assert request["authorization"].startswith("Basic ")
    assert request["form"] == {"query": "up", "timeout": "2"}


async def test_an_html_error_page_is_no_data_with_the_http_status() -> None:
    async with CannedPrometheus(502, "<html>Bad Gateway</html>", content_type="text/html") as canned:
        reading = await measure(canned.url, "up")

    assert reading == Measurement(None, "prometheus answered HTTP 502")


async def test_a_success_status_with_a_body_that_is_not_json_is_no_data() -> None:
    async with CannedPrometheus(200, "all good", content_type="text/plain") as canned:
        reading = await measure(canned.url, "up")

    assert reading == Measurement(None, "prometheus answered HTTP 200 with a body that is not JSON")


async def test_an_overloaded_prometheus_error_is_no_data_with_its_error_type() -> None:
    body = json.dumps(
        {"status": "error", "errorType": "timeout", "error": "query timed out in expression evaluation"}
    )
    async with CannedPrometheus(503, body) as canned:
        reading = await measure(canned.url, "up")

    assert reading == Measurement(None, "prometheus error timeout: query timed out in expression evaluation")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("[]", "prometheus answered HTTP 200 with an unexpected body"),
        ('{"status": "success"}', "prometheus answer has no data"),
        (
            '{"status": "success", "data": {"resultType": "vector", "result": {}}}',
            "prometheus vector answer is malformed",
        ),
        (
            '{"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, 2]}]}}',
            "prometheus series sample is malformed",
        ),
        (
            '{"status": "success", "data": {"resultType": "scalar", "result": [1, "abc"]}}',
            "prometheus scalar value 'abc' is not a number",
        ),
        (
            '{"status": "success", "data": {"resultType": "histogram", "result": []}}',
            "prometheus returned an unknown result type 'histogram'",
        ),
    ],
)
async def test_a_malformed_answer_is_no_data_never_an_exception(body: str, reason: str) -> None:
    async with CannedPrometheus(200, body) as canned:
        reading = await measure(canned.url, "up")

    assert reading == Measurement(None, reason)


class CannedPrometheus:
    """Answers every query with one fixed response and records what it was asked."""

    def __init__(self, status: int, body: str, *, content_type: str = "application/json") -> None:
        self.status, self.body, self.content_type = status, body, content_type
        self.requests: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> CannedPrometheus:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests.append(
            {
                "path": request.path,
                "authorization": request.headers.get("Authorization", ""),
                "form": {k: str(v) for k, v in form.items()},
            }
        )
        return web.Response(status=self.status, text=self.body, content_type=self.content_type)


def _vector(value: float) -> str:
    return json.dumps(
        {
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, str(value)]}]},
        }
    )
