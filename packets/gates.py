"""Gates: a threshold on one telemetry reading, and what a failed gate does.

A plan writes a gate's rule as text (`pass: ">= 0.995"`); `GateSpec.parse` reads it. `evaluate`
turns one reading into a `GateResult` (pass, fail or no-data) that says why, in words a person in
the war room can check against the dashboard. The outcome is always the truth about the reading;
how a no-data reading *counts* is the plan's `gate_policy.no_data`, applied by `verdict`, so the
evidence never says "pass" for a reading that did not exist.

Consecutive-pass bookkeeping keeps, per gate, only the last `consecutive_passes` counted results:
that window is both what decides completion and the evidence cited when the engine advances.

The rollback matrix maps each gate to its `on_fail` action. When several gates fail in one batch
only the most severe action is taken, in the order of `SEVERITY`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from packets.plan import Action, GatePolicy, Plan

NoDataPolicy = Literal["fail", "hold", "pass", "ignore"]

# Least to most severe. Freeze outranks a cohort rollback because it forbids every traffic change,
# the rollback included: it is what a plan uses when the fallback path itself is unhealthy, where
# moving traffic back would make things worse. A global rollback ends the run, so it is last.
SEVERITY: tuple[Action, ...] = ("pause", "hold", "rollback_cohort", "freeze", "global_rollback")

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_RULE = re.compile(rf"^\s*(>=|<=|==|>|<)\s*([-+]?{_NUMBER})\s*$")
# Against a baseline read at the same instant: `<= 2x baseline`, `<= baseline + 0.005`, `>= baseline`.
_BASELINE_RULE = re.compile(
    rf"^\s*(>=|<=|==|>|<)\s*(?:({_NUMBER})\s*[x*]\s*)?baseline\s*(?:([-+])\s*({_NUMBER}))?\s*$"
)


class GateSpecError(ValueError):
    """A pass rule that is neither `<op> <number>` nor `<op> [Nx] baseline [+|- N]` (op: >=, >, <=, <, ==)."""


class Comparison(StrEnum):
    AT_LEAST = ">="
    ABOVE = ">"
    AT_MOST = "<="
    BELOW = "<"
    EQUAL = "=="


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no-data"


class Verdict(StrEnum):
    """How the engine counts one outcome under the plan's no-data policy."""

    PASS = "pass"
    FAIL = "fail"
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class Relative:
    """A bound read off a baseline: `factor` times the baseline's reading plus `offset`."""

    factor: float = 1.0
    offset: float = 0.0

    def bound(self, baseline: float) -> float:
        return self.factor * baseline + self.offset

    def __str__(self) -> str:
        scaled = "baseline" if self.factor == 1 else f"{self.factor:g}x baseline"
        if self.offset == 0:
            return scaled
        return f"{scaled} {'+' if self.offset > 0 else '-'} {abs(self.offset):g}"


@dataclass(frozen=True, slots=True)
class GateSpec:
    comparison: Comparison
    threshold: float
    # Set for a rule against the gate's baseline; `threshold` is then unused (0).
    relative: Relative | None = None

    @classmethod
    def parse(cls, text: str) -> GateSpec:
        match = _RULE.match(text)
        if match is None:
            return cls._parse_relative(text)
        threshold = float(match.group(2))
        if not math.isfinite(threshold):
            raise GateSpecError(f"{text!r} needs a finite number")
        return cls(Comparison(match.group(1)), threshold)

    @classmethod
    def _parse_relative(cls, text: str) -> GateSpec:
        match = _BASELINE_RULE.match(text)
        if match is None:
            raise GateSpecError(
                f"{text!r} is not a gate rule like '>= 0.995' or '<= 2x baseline' "
                "(one of >=, >, <=, <, == and a number, or [Nx] baseline [+ or - N])"
            )
        factor = float(match.group(2)) if match.group(2) else 1.0
        offset = float(match.group(4)) if match.group(4) else 0.0
        if not (math.isfinite(factor) and math.isfinite(offset)):
            raise GateSpecError(f"{text!r} needs finite numbers")
        offset = -offset if match.group(3) == "-" else offset
        return cls(Comparison(match.group(1)), 0.0, Relative(factor, offset))

    def bound(self, baseline: float | None = None) -> float:
        if self.relative is None:
            return self.threshold
        if baseline is None:
            raise ValueError("a rule against a baseline needs the baseline's reading")
        return self.relative.bound(baseline)

    def worst(self, values: Sequence[float]) -> float | None:
        """The reading furthest on the failing side: the highest under a ceiling, the lowest under a
        floor (for `==`, the first that differs from the threshold, else the first)."""
        if not values:
            return None
        match self.comparison:
            case Comparison.AT_MOST | Comparison.BELOW:
                return max(values)
            case Comparison.AT_LEAST | Comparison.ABOVE:
                return min(values)
            case Comparison.EQUAL:
                return max(values, key=lambda v: abs(v - self.threshold))

    def admits(self, value: float, baseline: float | None = None) -> bool:
        limit = self.bound(baseline)
        match self.comparison:
            case Comparison.AT_LEAST:
                return value >= limit
            case Comparison.ABOVE:
                return value > limit
            case Comparison.AT_MOST:
                return value <= limit
            case Comparison.BELOW:
                return value < limit
            case Comparison.EQUAL:
                return value == limit

    def __str__(self) -> str:
        if self.relative is not None:
            return f"{self.comparison} {self.relative}"
        return f"{self.comparison} {self.threshold:g}"


@dataclass(frozen=True, slots=True)
class GateResult:
    """One reading of one gate. `at` is when it was measured; the engine stamps it if missing."""

    gate: str
    outcome: Outcome
    value: float | None = None
    reason: str = ""
    at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "outcome": str(self.outcome),
            "value": self.value,
            "reason": self.reason,
            "at": self.at.isoformat() if self.at is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateResult:
        at = data.get("at")
        value = data.get("value")
        return cls(
            gate=data["gate"],
            outcome=Outcome(data["outcome"]),
            value=float(value) if value is not None else None,
            reason=data.get("reason", ""),
            at=datetime.fromisoformat(at) if at else None,
        )


def evaluate(
    value: float | None,
    spec: GateSpec,
    no_data: NoDataPolicy = "fail",
    *,
    gate: str,
    at: datetime | None = None,
    why_missing: str = "",
    baseline: float | None = None,
    baseline_missing: str = "",
) -> GateResult:
    """One reading against one rule. A missing or non-finite value is no-data, never a pass; so is
    a rule against a baseline whose own reading is missing (no-data on either side is no-data)."""
    no_baseline = spec.relative is not None and (baseline is None or not math.isfinite(baseline))
    if value is None or not math.isfinite(value) or no_baseline:
        if value is None or not math.isfinite(value):
            missing = why_missing or ("no value" if value is None else f"value {value} is not a number")
        else:
            missing = f"the baseline has no data ({baseline_missing or 'no value'})"
        counted = {
            "fail": "counts as a failure",
            "hold": "holds the checkpoint",
            "pass": "counts as a pass",
            "ignore": "is ignored",
        }
        reason = f"{missing}; no-data {counted[no_data]} under this plan's gate policy"
        return GateResult(gate=gate, outcome=Outcome.NO_DATA, value=None, reason=reason, at=at)
    rule = str(spec)
    if spec.relative is not None and baseline is not None:
        rule += f" (baseline {baseline:.6g}, so {spec.comparison} {spec.bound(baseline):.6g})"
    if spec.admits(value, baseline):
        return GateResult(gate=gate, outcome=Outcome.PASS, value=value, reason=f"{value:.6g} {rule}", at=at)
    reason = f"{value:.6g} is not {rule}"
    return GateResult(gate=gate, outcome=Outcome.FAIL, value=value, reason=reason, at=at)


def verdict(outcome: Outcome, no_data: NoDataPolicy) -> Verdict:
    if outcome is Outcome.PASS:
        return Verdict.PASS
    if outcome is Outcome.FAIL:
        return Verdict.FAIL
    return {"fail": Verdict.FAIL, "hold": Verdict.FAIL, "pass": Verdict.PASS, "ignore": Verdict.IGNORE}[
        no_data
    ]


# -- consecutive-pass bookkeeping ---------------------------------------------------------------


def remember(
    window: tuple[GateResult, ...], result: GateResult, *, keep: int, no_data: NoDataPolicy
) -> tuple[GateResult, ...]:
    """The window with `result` added and only the last `keep` kept; ignored no-data is dropped.

    Dropping an ignored reading (rather than storing it) is what makes `ignore` mean "neither
    breaks nor extends the streak".
    """
    if verdict(result.outcome, no_data) is Verdict.IGNORE:
        return window
    return (*window, result)[-keep:] if keep > 0 else ()


def streak_passes(
    window: tuple[GateResult, ...], *, needed: int, no_data: NoDataPolicy, after: datetime | None = None
) -> bool:
    """Whether the last `needed` counted results of one gate all pass (and, with `after`, were all
    read after that moment: passes from before a pause or a freeze do not vouch for after it)."""
    if len(window) < needed:
        return False
    last = window[-needed:] if needed > 0 else ()
    if after is not None and any(r.at is None or r.at <= after for r in last):
        return False
    return all(verdict(r.outcome, no_data) is Verdict.PASS for r in last)


def last_failed(window: tuple[GateResult, ...], *, no_data: NoDataPolicy) -> bool:
    return bool(window) and verdict(window[-1].outcome, no_data) is Verdict.FAIL


# -- when a failing gate acts ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GateTally:
    """One gate's failures inside the current stage (attempt), for `for` and `failure_limit`.

    `failures` counts every failing reading of the stage (Argo Rollouts' failureLimit counts the
    stage's failed measurements, not a streak); `failing_since` is when the current run of failing
    readings began, reset by one passing reading. `ready` is set once a readiness gate has gathered
    its passes: from then on it is judged like any gate.
    """

    failures: int = 0
    failing_since: datetime | None = None
    ready: bool = False

    def as_json(self) -> dict[str, Any]:
        since = self.failing_since.isoformat() if self.failing_since is not None else None
        return {"failures": self.failures, "failing_since": since, "ready": self.ready}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateTally:
        since = data.get("failing_since")
        return cls(
            failures=int(data.get("failures", 0)),
            failing_since=datetime.fromisoformat(since) if since else None,
            ready=bool(data.get("ready", False)),
        )

    def failed_for(self, at: datetime) -> timedelta:
        return at - self.failing_since if self.failing_since is not None else timedelta(0)


def tally(current: GateTally, result: GateResult, *, no_data: NoDataPolicy) -> GateTally:
    """The tally after one reading stamped with its time. An ignored no-data changes nothing."""
    counted = verdict(result.outcome, no_data)
    if counted is Verdict.PASS:
        return GateTally(failures=current.failures, failing_since=None, ready=current.ready)
    if counted is Verdict.FAIL:
        since = current.failing_since or result.at
        return GateTally(failures=current.failures + 1, failing_since=since, ready=current.ready)
    return current


def failure_acts(current: GateTally, *, at: datetime, policy: GatePolicy) -> bool:
    """Whether a failing gate takes its action now: more failures in the stage than its
    `failure_limit` tolerates, and failing without a pass for at least its `for`."""
    if current.failing_since is None:
        return False
    return current.failures > policy.tolerated and current.failed_for(at) >= policy.lasting


def readiness_timed_out(
    current: GateTally, *, started: datetime | None, at: datetime, timeout: timedelta
) -> bool:
    """A readiness gate that has not become ready acts only once its timeout since the stage began ran out."""
    return not current.ready and started is not None and at - started >= timeout


# -- the rollback matrix ------------------------------------------------------------------------


def severity(action: Action) -> int:
    return SEVERITY.index(action)


def most_severe(actions: Iterable[Action]) -> Action | None:
    ranked = sorted(actions, key=severity)
    return ranked[-1] if ranked else None


@dataclass(frozen=True, slots=True)
class RollbackMatrix:
    """Each gate's `on_fail` action, as the plan wrote it."""

    actions: Mapping[str, Action]
    # Gates whose no-data policy is `hold`: a no-data reading holds, whatever `on_fail` says.
    no_data_holds: frozenset[str] = frozenset()

    @classmethod
    def of(cls, plan: Plan) -> RollbackMatrix:
        holds = frozenset(name for name in plan.gates if plan.gate_policy_of(name).no_data == "hold")
        return cls({name: gate.on_fail for name, gate in plan.gates.items()}, holds)

    def action_for(self, gate: str, outcome: Outcome = Outcome.FAIL) -> Action:
        if outcome is Outcome.NO_DATA and gate in self.no_data_holds:
            return "hold"
        # A result for a gate the plan does not define cannot be judged; treat it as the
        # strictest stop that still leaves the decision to a person.
        return self.actions.get(gate, "hold")

    def decide(self, failing: Iterable[GateResult]) -> tuple[Action, GateResult] | None:
        """The action to take for a batch of failing results, and the result that chose it.

        Ties go to the first failing result in the batch, so the choice is deterministic.
        """
        chosen: tuple[Action, GateResult] | None = None
        for result in failing:
            action = self.action_for(result.gate, result.outcome)
            if chosen is None or severity(action) > severity(chosen[0]):
                chosen = (action, result)
        return chosen
