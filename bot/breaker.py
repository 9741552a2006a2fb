"""The outbox's circuit breaker: a Slack Web API method that keeps failing is not called for every
row's every attempt.

Per method: *closed* (calls go; transient failures in a row are counted), *open* (after
`failures` of them: nobody calls it, every row that would is left pending for its next round),
*half-open* (a new drain: the first caller is the probe, the others wait for its answer; an answer
closes the breaker and they go, a failure opens it again and they wait for their next round).
Any answer from Slack counts as an answer, a refusal or a 429 included: Slack is there.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

from bot import messages as M
from bot import metrics

log = logging.getLogger("cutover_bot.dispatcher")


class _State(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Breaker:
    def __init__(self, failures: int) -> None:
        self._failures = failures
        self._state: dict[str, _State] = {}
        self._in_a_row: dict[str, int] = {}
        # The probe in flight per method, which the other callers of that method wait on.
        self._probe: dict[str, asyncio.Future[bool]] = {}

    def new_round(self) -> None:
        """A drain begins: every open method may be probed once."""
        for method, state in self._state.items():
            if state is _State.OPEN:
                self._state[method] = _State.HALF_OPEN

    async def admit(self, method: str) -> bool:
        """True: call `method` now. False: do not (it is open); the row waits for its next round."""
        state = self._state.get(method, _State.CLOSED)
        if state is _State.CLOSED:
            return True
        if state is _State.OPEN:
            return False
        probe = self._probe.get(method)
        if probe is None or probe.done():
            self._probe[method] = asyncio.get_running_loop().create_future()
            return True
        return await asyncio.shield(probe)

    def answered(self, method: str) -> None:
        """Slack answered `method`: the breaker closes."""
        self._in_a_row.pop(method, None)
        self._state[method] = _State.CLOSED
        self._settle(method, True)

    def failed(self, method: str) -> bool:
        """A transient failure of `method` (a 5xx, a timeout, a dropped connection): True when the
        breaker is open now and the caller should stop trying in this round."""
        if self._state.get(method) is _State.HALF_OPEN:
            self._open(method, self._failures)
            return True
        in_a_row = self._in_a_row.get(method, 0) + 1
        self._in_a_row[method] = in_a_row
        if in_a_row >= self._failures:
            self._open(method, in_a_row)
        return self._state.get(method) is _State.OPEN

    def abandon(self, method: str) -> None:
        """The admitted call never left (the store failed first): those waiting on it wait for
        their next round rather than for ever."""
        if self._state.get(method) is _State.HALF_OPEN:
            self._state[method] = _State.OPEN
            self._settle(method, False)

    def _open(self, method: str, in_a_row: int) -> None:
        if self._state.get(method) is not _State.OPEN:
            metrics.OUTBOX_BREAKER_OPENED.inc()
            log.warning(M.LOG.breaker_open, method, in_a_row)
        self._state[method] = _State.OPEN
        self._settle(method, False)

    def _settle(self, method: str, answered: bool) -> None:
        probe = self._probe.pop(method, None)
        if probe is not None and not probe.done():
            probe.set_result(answered)
