"""Gate readings from Prometheus: one instant query per gate check.

A gate compares one number with its threshold, so a query must come back as a single scalar or a
vector holding exactly one sample. Everything else (no series, several series, NaN, a string or
matrix result, a PromQL error, an HTTP error, a timeout, nobody listening) is no-data with a
reason a person in the war room can act on. `measure` never raises: the engine decides what
no-data means through the plan's `gate_policy.no_data`.

Evaluation time: by default the query carries no `time`, so Prometheus evaluates it at its own
"now". A live gate check wants the freshest data, and leaving the clock to Prometheus keeps a
skewed bot host (or a tick that runs a little late) from reading the past. `pin_time=True` sends
`at` as `time` instead, for deterministic re-evaluation of a past moment (`gates check --at`).
"""

from __future__ import annotations

import base64
import errno
import json
import math
from datetime import datetime
from typing import Any

import aiohttp
from yarl import URL

from handlers.ports import Measurement

_QUERY_PATH = "api/v1/query"
# Prometheus error bodies can be long (a whole parse trace); a reason is one line in Slack.
_MAX_ERROR = 300


class PrometheusTelemetry:
    """`Telemetry` over the Prometheus HTTP API (`POST /api/v1/query`)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        session: aiohttp.ClientSession | None = None,
        pin_time: bool = False,
    ) -> None:
        url = URL(base_url)
        # Credentials in the URL become a header; the URL we keep and show has none.
        self._headers = _basic_auth(url)
        bare = url.with_user(None).with_password(None).with_query(None).with_fragment(None)
        self._query_url = bare.with_path(bare.path.rstrip("/") + "/" + _QUERY_PATH)
        self._where = f"{bare.host}:{bare.port}"
        self._timeout = timeout
        self._session = session
        self._pin_time = pin_time

    @property
    def query_url(self) -> str:
        """The query endpoint without credentials: safe to show."""
        return str(self._query_url)

    async def measure(self, *, gate: str, query: str, at: datetime) -> Measurement:
        # Prometheus takes a bare number of seconds; it then gives up server-side as well.
        form = {"query": query, "timeout": f"{self._timeout:g}"}
        if self._pin_time:
            form["time"] = f"{at.timestamp():.3f}"
        try:
            if self._session is not None:
                return await self._post(self._session, form)
            # Without a shared session (the CLI, a one-off check) each reading owns a short-lived one.
            async with aiohttp.ClientSession() as session:
                return await self._post(session, form)
        except TimeoutError:
            return Measurement(
                None, f"timeout after {self._timeout}s waiting for prometheus at {self._where}"
            )
        except aiohttp.ClientConnectorError as exc:
            return Measurement(None, self._connect_reason(exc))
        except aiohttp.ClientError as exc:
            return Measurement(None, f"prometheus request to {self._where} failed: {type(exc).__name__}")
        except Exception as exc:  # the Telemetry contract: never raise, say why instead
            return Measurement(None, f"prometheus reading failed: {type(exc).__name__}")

    async def _post(self, session: aiohttp.ClientSession, form: dict[str, str]) -> Measurement:
        async with session.post(
            self._query_url,
            data=form,
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            allow_redirects=False,
        ) as response:
            text = await response.text()
            status = response.status
        try:
            body = json.loads(text)
        except ValueError:
            if status >= 300:
                return Measurement(None, f"prometheus answered HTTP {status}")
            return Measurement(None, f"prometheus answered HTTP {status} with a body that is not JSON")
        return interpret(body, http_status=status)

    def _connect_reason(self, exc: aiohttp.ClientConnectorError) -> str:
        if exc.os_error is not None and exc.os_error.errno == errno.ECONNREFUSED:
            return f"connection refused to {self._where}"
        # ClientConnectorDNSError is aiohttp >= 3.10; older versions fall through to the generic text.
        dns_error = getattr(aiohttp, "ClientConnectorDNSError", None)
        if dns_error is not None and isinstance(exc, dns_error):
            return f"cannot resolve prometheus host {self._query_url.host}"
        detail = exc.os_error.strerror if exc.os_error is not None and exc.os_error.strerror else ""
        return f"cannot connect to prometheus at {self._where}" + (f": {detail}" if detail else "")


def _basic_auth(url: URL) -> dict[str, str]:
    # Built by hand: aiohttp.BasicAuth is deprecated in 3.14 and its replacement is 3.14-only.
    if url.user is None:
        return {}
    pair = f"{url.user}:{url.password or ''}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


def interpret(body: Any, *, http_status: int = 200) -> Measurement:
    """Turn a `/api/v1/query` answer into one reading (pure; exposed for tests and reuse)."""
    if not isinstance(body, dict):
        return Measurement(None, f"prometheus answered HTTP {http_status} with an unexpected body")
    if body.get("status") != "success":
        kind = body.get("errorType") or "unknown"
        error = str(body.get("error") or "no error message")
        return Measurement(None, f"prometheus error {kind}: {_one_line(error)}")
    if http_status >= 300:
        return Measurement(None, f"prometheus answered HTTP {http_status}")
    data = body.get("data")
    if not isinstance(data, dict):
        return Measurement(None, "prometheus answer has no data")
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        return _sample(result, what="scalar")
    if kind == "vector":
        if not isinstance(result, list):
            return Measurement(None, "prometheus vector answer is malformed")
        if not result:
            return Measurement(None, "no series returned")
        if len(result) > 1:
            return Measurement(None, f"{len(result)} series returned; a gate needs one")
        series = result[0]
        sample = series.get("value") if isinstance(series, dict) else None
        return _sample(sample, what=_series_name(series))
    if kind == "matrix":
        return Measurement(None, "query returned a range (matrix); a gate needs an instant value")
    if kind == "string":
        return Measurement(None, "query returned a string; a gate needs a number")
    return Measurement(None, f"prometheus returned an unknown result type {kind!r}")


def _sample(sample: Any, *, what: str) -> Measurement:
    # A sample is [unix_time, "value"]; the value is a string so that NaN and ±Inf survive JSON.
    if not (isinstance(sample, list) and len(sample) == 2 and isinstance(sample[1], str)):
        return Measurement(None, f"prometheus {what} sample is malformed")
    try:
        value = float(sample[1])
    except ValueError:
        return Measurement(None, f"prometheus {what} value {sample[1]!r} is not a number")
    if not math.isfinite(value):
        return Measurement(None, f"{what} is {sample[1]}; a gate needs a finite number")
    return Measurement(value, "")


def _series_name(series: Any) -> str:
    metric = series.get("metric") if isinstance(series, dict) else None
    if isinstance(metric, dict) and isinstance(metric.get("__name__"), str):
        return f"series {metric['__name__']}"
    return "series"


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MAX_ERROR else line[: _MAX_ERROR - 1] + "…"
