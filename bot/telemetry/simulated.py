"""Gate readings from the plan's `rehearsal:` section: step functions over the cutover window.

    rehearsal:
      telemetry: {lookup-latency-p95: [[0m, 0.12], [35m, 0.31], [50m, 0.14]]}
      default: pass

A gate's value at time t is the value of the last point whose offset is <= t - window_start
(null there means no-data). Before a gate's first point, and for a gate with no timeline at all,
`rehearsal.default` decides: `pass` gives a plausible passing value derived from the gate's own
pass rule (`>= 0.995` gives 0.999, `<= 0.25` gives 0.125, `>= 1` gives 1), `no-data` gives no-data.
Deterministic: the same plan and time always give the same reading; the query is not used.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from datetime import datetime, timedelta

from handlers.ports import Measurement
from packets.durations import format_duration
from packets.gates import Comparison, GateSpec, GateSpecError
from packets.plan import Plan, Rehearsal


class SimulatedTelemetry:
    """`Telemetry` for rehearsals: the plan's scripted timelines, else plausible passing values."""

    def __init__(self, plan: Plan, *, window_start: datetime | None = None) -> None:
        self._plan = plan
        self._rehearsal = plan.rehearsal or Rehearsal()
        self.window_start = window_start or plan.window.start
        # Sorted once: the plan checks refuse unordered points in a file, but a plan built in code
        # (tests, generated rehearsals) is not checked, and a step function must not care.
        self._timelines: dict[str, list[tuple[timedelta, float | None]]] = {
            gate: sorted(points, key=lambda point: point[0])
            for gate, points in self._rehearsal.telemetry.items()
        }

    async def measure(self, *, gate: str, query: str, at: datetime) -> Measurement:
        return self.reading(gate, at=at)

    def reading(self, gate: str, *, at: datetime) -> Measurement:
        """The same answer as `measure`, without the event loop (rehearsal printing, tests)."""
        elapsed = at - self.window_start
        points = self._timelines.get(gate, [])
        index = bisect_right([offset for offset, _ in points], elapsed)
        if index:
            offset, value = points[index - 1]
            if value is None or not math.isfinite(value):
                return Measurement(None, f"rehearsal timeline says no data from +{format_duration(offset)}")
            return Measurement(value, f"rehearsal timeline from +{format_duration(offset)}")
        return self._default(gate, before_first=bool(points), at=at)

    def _default(self, gate: str, *, before_first: bool, at: datetime) -> Measurement:
        where = "before its first rehearsal point" if before_first else "no rehearsal timeline"
        if self._rehearsal.default == "no-data":
            return Measurement(None, f"{where}; rehearsal.default is no-data")
        owner = gate.removesuffix("@baseline")
        if owner != gate and owner in self._plan.gates:
            return Measurement(BASELINE_DEFAULT, f"{where}; rehearsal default baseline")
        spec = self._plan.gates.get(gate)
        if spec is None:
            return Measurement(None, f"gate {gate} is not in the plan and has no rehearsal timeline")
        if spec.baseline is not None:
            return self._relative_default(gate, spec.pass_, where=where, at=at)
        value = plausible_passing_value(spec.pass_)
        if value is None:
            return Measurement(None, f"{where}; cannot derive a passing value from {spec.pass_!r}")
        return Measurement(value, f"{where}; rehearsal default: a passing value")

    def _relative_default(self, gate: str, rule: str, *, where: str, at: datetime) -> Measurement:
        """A rule against a baseline passes on a value derived from the baseline's reading now."""
        baseline = self.reading(self._plan.baseline_series(gate), at=at)
        if baseline.value is None:
            return Measurement(None, f"{where}; the baseline has no data")
        try:
            spec = GateSpec.parse(rule)
        except (GateSpecError, ValueError):
            return Measurement(None, f"{where}; cannot derive a passing value from {rule!r}")
        bound = spec.bound(baseline.value)
        value = {Comparison.BELOW: bound - 1, Comparison.ABOVE: bound + 1}.get(spec.comparison, bound)
        return Measurement(value, f"{where}; rehearsal default: a passing value against the baseline")


# A baseline series with no rehearsal timeline reads this (any positive number would do).
BASELINE_DEFAULT = 0.2


def plausible_passing_value(rule: str) -> float | None:
    """A value a healthy system would report for `rule`, not just one that scrapes past it.

    Ratios (thresholds strictly between 0 and 1 with >= or >) get most of the way to 1, the way a
    healthy success rate sits well above its floor; ceilings (<=, <) get half the limit, the way a
    healthy latency sits well under its budget. None when the rule cannot be read.
    """
    try:
        spec = GateSpec.parse(rule)
    except GateSpecError:
        return None
    candidate = _candidate(spec.comparison, spec.threshold)
    # Float noise (0.995 + 0.004 = 0.9990000000000001) would look odd in a rehearsal transcript.
    rounded = float(f"{candidate:.12g}")
    return rounded if spec.admits(rounded) else candidate


def _candidate(op: Comparison, t: float) -> float:
    margin = max(abs(t) * 0.5, 1.0)
    if op in (Comparison.AT_LEAST, Comparison.ABOVE):
        if 0 < t < 1:
            return t + (1 - t) * 0.8
        return t if op is Comparison.AT_LEAST else t + margin
    if op in (Comparison.AT_MOST, Comparison.BELOW):
        if t > 0:
            return t / 2
        return t if op is Comparison.AT_MOST else t - margin
    return t  # ==
