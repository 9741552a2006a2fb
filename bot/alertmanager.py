"""`POST /alertmanager`: Prometheus Alertmanager's webhook (payload version "4") in, gate readings out.

Checked in this order: the bearer token (`Authorization: Bearer <CUTOVER_ALERTMANAGER_TOKEN>`,
compared in constant time; 401 when missing or wrong, and always 401 while the variable is unset),
then the body (400 when it is not a JSON object of version "4" with an `alerts` list). Every alert
whose `status` is `firing` and whose labels carry `cutover_plan` and `cutover_gate` goes to
`handlers.alerts.alert_fired`, which counts it for every active run of that plan and commits
before this answers: a 200 means the readings are in the database and their actions taken. A
resolved alert, or one without those labels, counts as nothing (the next scheduled reading
decides). When the database fails, 503: Alertmanager retries, and what was already committed is
not counted twice (one alert reading per gate and interval).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from bot import metrics
from bot.messages import LOG
from handlers.alerts import AlertsOutcome
from handlers.commands import AlertFired

log = logging.getLogger("cutover_bot.alertmanager")

PLAN_LABEL = "cutover_plan"
GATE_LABEL = "cutover_gate"
VERSION = "4"
SUMMARY_MAX = 300

CountAlert = Callable[[AlertFired], Awaitable[AlertsOutcome]]


class Malformed(ValueError):
    """The body is not an Alertmanager webhook payload this route reads."""


def firing_alerts(body: bytes) -> tuple[list[AlertFired], int]:
    """The firing alerts that name a plan and a gate, and how many alerts the payload held.

    Raises `Malformed` for anything that is not a version 4 payload with an `alerts` list."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed("body is not JSON") from exc
    if not isinstance(payload, dict):
        raise Malformed("body is not a JSON object")
    if str(payload.get("version", "")) != VERSION:
        raise Malformed(f'payload version is not "{VERSION}"')
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise Malformed("payload has no alerts list")
    found = []
    for alert in alerts:
        if not isinstance(alert, dict):
            raise Malformed("an alert is not a JSON object")
        fired = _fired(alert)
        if fired is not None:
            found.append(fired)
    return found, len(alerts)


def _fired(alert: dict[str, Any]) -> AlertFired | None:
    labels = alert.get("labels")
    annotations = alert.get("annotations")
    if not isinstance(labels, dict) or alert.get("status") != "firing":
        return None
    plan, gate = labels.get(PLAN_LABEL), labels.get(GATE_LABEL)
    if not (isinstance(plan, str) and plan and isinstance(gate, str) and gate):
        return None
    notes = annotations if isinstance(annotations, dict) else {}
    summary = notes.get("summary") or notes.get("description") or ""
    return AlertFired(
        plan=plan,
        gate=gate,
        alert=str(labels.get("alertname", "")),
        fingerprint=str(alert.get("fingerprint", "")),
        starts_at=_time(alert.get("startsAt")),
        value=_number(notes.get("value")),
        summary=str(summary)[:SUMMARY_MAX],
    )


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Alertmanager's zero time (`0001-01-01T00:00:00Z`) and naive times say nothing useful.
    return parsed if parsed.tzinfo is not None and parsed.year > 1 else None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def authorized(header: str | None, token: str) -> bool:
    """Whether `Authorization` carries the bearer token (never true for an empty token)."""
    if not token or header is None:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def route(*, token: str, count: CountAlert) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler of `POST /alertmanager`."""
    if not token.strip():
        log.warning(LOG.alert_no_token)

    async def alertmanager(request: web.Request) -> web.Response:
        if not authorized(request.headers.get("Authorization"), token.strip()):
            metrics.ALERTS.labels(outcome="unauthorized").inc()
            log.info(LOG.alert_refused, "no valid bearer token")
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            fired, total = firing_alerts(await request.read())
        except Malformed as exc:
            metrics.ALERTS.labels(outcome="malformed").inc()
            log.info(LOG.alert_refused, exc)
            return web.json_response({"error": str(exc)}, status=400)
        metrics.ALERTS.labels(outcome="ignored").inc(total - len(fired))
        counted = 0
        for alert in fired:
            try:
                outcome = await count(alert)
            except Exception:  # the database is away: Alertmanager retries on a 5xx
                metrics.ALERTS.labels(outcome="error").inc()
                log.exception(LOG.alert_failed)
                return web.json_response({"error": "not counted yet; retry"}, status=503)
            counted += outcome.counted
            metrics.ALERTS.labels(outcome="counted" if outcome.counted else "not_counted").inc()
            for run in outcome.runs:
                log.info(LOG.alert_counted, alert.alert, alert.gate, alert.plan, run.message)
        return web.json_response({"alerts": total, "firing": len(fired), "counted": counted}, status=200)

    return alertmanager
