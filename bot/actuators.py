"""Traffic actuators: how a planned shift reaches the traffic control plane.

`WebhookActuator` POSTs the shift as JSON to the plan's `actuator.url`; `LogActuator` only records
it (rehearsals, dry runs, teams that move traffic by hand and want the bot to keep the record).
Both honour the `Actuator` contract: `shift` never raises, a refusal or an error is `ok=False`
with a detail a person can read, without credentials.

`idempotency_key` lives here for now; it is pure and the use-case layer calls it, so it may move to
handlers/ (the lead's call).
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import logging
from collections.abc import Mapping

import aiohttp
from yarl import URL

from handlers.ports import ActuationResult, Shift
from packets.plan import Plan

log = logging.getLogger("cutover_bot.actuators")

# A control plane's refusal body is for people; keep enough of it to say why, not a whole page.
_MAX_DETAIL = 200


def idempotency_key(
    *,
    run: str,
    checkpoint: str,
    cohort: str,
    percent: float,
    packet_version: int,
    attempt: int | None = None,
) -> str:
    """The same key for every retry of the same shift, so the control plane can drop duplicates.

    Derived only from what identifies the shift: no clock, no randomness. `percent` is normalised
    (1 and 1.0 are the same shift). `attempt` is for a deliberate re-issue of an identical shift
    after a rollback (same run, checkpoint, percent and packet version): without a new key the
    control plane would rightly discard it as a duplicate of the first one.
    """
    identity: dict[str, object] = {
        "run": run,
        "checkpoint": checkpoint,
        "cohort": cohort,
        "percent": repr(float(percent)),
        "packet_version": packet_version,
    }
    if attempt is not None:
        identity["attempt"] = attempt
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "cutover-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def shift_payload(shift: Shift) -> dict[str, object]:
    """The JSON body of a webhook call."""
    return {
        "run": shift.run,
        "checkpoint": shift.checkpoint,
        "cohort": shift.cohort,
        "percent": shift.percent,
        "packet_version": shift.packet_version,
        "idempotency_key": shift.idempotency_key,
    }


class WebhookActuator:
    """`Actuator` that POSTs each shift to a control-plane webhook; 2xx means done."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        session: aiohttp.ClientSession | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parsed = URL(url)
        self._auth_headers = _basic_auth(parsed)
        self._url = parsed.with_user(None).with_password(None)
        self._where = f"{self._url.host}:{self._url.port}"
        self._timeout = timeout
        self._session = session
        self._headers = dict(headers or {})

    async def shift(self, shift: Shift) -> ActuationResult:
        try:
            if self._session is not None:
                return await self._post(self._session, shift)
            async with aiohttp.ClientSession() as session:
                return await self._post(session, shift)
        except TimeoutError:
            return ActuationResult(False, f"timeout after {self._timeout}s waiting for {self._where}")
        except aiohttp.ClientConnectorError as exc:
            if exc.os_error is not None and exc.os_error.errno == errno.ECONNREFUSED:
                return ActuationResult(False, f"connection refused to {self._where}")
            return ActuationResult(False, f"cannot connect to {self._where}")
        except aiohttp.ClientError as exc:
            return ActuationResult(False, f"request to {self._where} failed: {type(exc).__name__}")
        except Exception as exc:  # the Actuator contract: never raise, say why instead
            return ActuationResult(False, f"actuation failed: {type(exc).__name__}")

    async def _post(self, session: aiohttp.ClientSession, shift: Shift) -> ActuationResult:
        headers = {**self._headers, **self._auth_headers, "Idempotency-Key": shift.idempotency_key}
        async with session.post(
            self._url,
            json=shift_payload(shift),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            # A redirect of a POST to somewhere else is not an acknowledgement of the shift.
            allow_redirects=False,
        ) as response:
            body = await response.text()
            status = response.status
        summary = " ".join(body.split())[:_MAX_DETAIL]
        if 200 <= status < 300:
            return ActuationResult(True, f"HTTP {status}" + (f": {summary}" if summary else ""))
        return ActuationResult(
            False, f"HTTP {status} from {self._where}" + (f": {summary}" if summary else "")
        )


def _basic_auth(url: URL) -> dict[str, str]:
    # Built by hand: aiohttp.BasicAuth is deprecated in 3.14 and its replacement is 3.14-only.
    if url.user is None:
        return {}
    pair = f"{url.user}:{url.password or ''}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


class LogActuator:
    """`Actuator` that records each shift (in `.shifts` and the log) and always succeeds."""

    def __init__(self) -> None:
        self.shifts: list[Shift] = []

    async def shift(self, shift: Shift) -> ActuationResult:
        self.shifts.append(shift)
        log.info(
            "traffic shift (log actuator): run=%s checkpoint=%s cohort=%s percent=%s packet=v%s",
            shift.run,
            shift.checkpoint,
            shift.cohort,
            shift.percent,
            shift.packet_version,
        )
        return ActuationResult(True, f"logged: {shift.cohort} to {shift.percent:g}%")


def actuator_for(
    plan: Plan, *, session: aiohttp.ClientSession | None = None
) -> WebhookActuator | LogActuator:
    """The actuator the plan asks for (`actuator.kind`)."""
    spec = plan.actuator
    if spec.kind == "log":
        return LogActuator()
    if not spec.url:
        raise ValueError("actuator: a webhook actuator needs a url")
    return WebhookActuator(spec.url, timeout=spec.timeout.total_seconds(), session=session)
