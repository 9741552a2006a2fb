"""The approved change package: the pydantic models of a plan file, and `PlanInvalid`.

`packets.plan_load.load_plan(text, source=...)` is the one way from text to a `Plan`; the rules
beyond field types live in `packets.plan_checks`. Imports point one way: plan_load -> plan_checks
-> plan.

The plan's `revision` is the sha256 of its canonical JSON (sorted keys, no whitespace) so that
reformatting the YAML never changes it and changing any value always does.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, time, timedelta
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)

from packets.bundle import Bundle
from packets.durations import DurationError, format_duration, parse_duration

Action = Literal["pause", "hold", "rollback_cohort", "global_rollback", "freeze"]
ACTIONS: tuple[Action, ...] = ("pause", "hold", "rollback_cohort", "global_rollback", "freeze")
# The pseudo-checkpoint hyper-care's gate results and holds are recorded under; no checkpoint of a
# plan with hyper-care may take this id (plan_checks).
HYPERCARE_CHECKPOINT = "hypercare"


def _to_duration(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration like 15m, not true/false")
    if isinstance(value, int):
        # A bare number in a plan is minutes: that is how people write `duration: 15`. It goes
        # through parse_duration so both spellings share one range (and never overflow).
        if value < 0:
            raise ValueError("a duration cannot be negative")
        value = f"{value}m"
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except DurationError as exc:
            raise ValueError(str(exc)) from exc
    raise ValueError("expected a duration like 15m or 1h30m")


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


def _require_offset(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp needs an offset, like 2026-11-24T21:00:00-05:00")
    return value


class _Model(BaseModel):
    # No inf/nan anywhere: the revision hashes JSON, where they have no faithful form.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class Window(_Model):
    start: datetime
    end: datetime

    _offsets = field_validator("start", "end")(_require_offset)


class CheckpointWindow(_Model):
    not_before: datetime | None = None
    not_after: datetime | None = None

    _offsets = field_validator("not_before", "not_after")(lambda v: v if v is None else _require_offset(v))


class Role(_Model):
    primary: str = Field(min_length=1)
    delegates: list[str] = Field(default_factory=list)

    @property
    def members(self) -> tuple[str, ...]:
        """Everyone who may ever act for the role: the primary first, then the delegates."""
        return (self.primary, *self.delegates)


class Authority(_Model):
    signoff: list[str] = Field(min_length=1)
    adopt_packets: list[str] = Field(min_length=1)
    # A list: any of these roles may switch the acting user of every role. A mapping: per role
    # (the key), the roles that may switch its acting user; a role not named has no switcher.
    change_delegates: list[str] | dict[str, list[str]] = Field(default_factory=list)
    start_and_rollback: list[str] = Field(min_length=1)
    # Who may pause, resume, freeze and unfreeze by hand; defaults to start_and_rollback.
    pause_and_freeze: list[str] | None = None

    def switchers_for(self, role: str) -> list[str]:
        """The roles whose acting users may switch who acts for `role`."""
        if isinstance(self.change_delegates, dict):
            return list(self.change_delegates.get(role, []))
        return list(self.change_delegates)

    @property
    def pausers(self) -> list[str]:
        return self.pause_and_freeze if self.pause_and_freeze is not None else self.start_and_rollback


class Telemetry(_Model):
    provider: Literal["prometheus", "file", "simulated"]
    url: str | None = None
    path: str | None = None
    timeout: Duration = timedelta(seconds=5)


NoData = Literal["fail", "hold", "pass", "ignore"]


class GatePolicy(_Model):
    """The plan's defaults for every gate; a gate may set any of them for itself."""

    interval: Duration = timedelta(minutes=1)
    consecutive_passes: int = Field(default=3, ge=1, le=100)
    # fail: counts as a failing reading; hold: holds the checkpoint whatever `on_fail` says;
    # pass: counts as a pass (kept for plans that wrote it); ignore: neither breaks nor extends a streak.
    no_data: NoData = "fail"
    # A failure acts only once the gate has failed this long without a passing reading between.
    # None (unset) is 0; unset stays out of the canonical JSON, so older plans keep their revision.
    for_: Duration | None = Field(default=None, alias="for")
    # Failing readings tolerated inside the stage before acting (Argo Rollouts' failureLimit:
    # the gate acts when its failures in the stage exceed the limit).
    failure_limit: int | None = Field(default=None, ge=0, le=1000)

    @property
    def lasting(self) -> timedelta:
        return self.for_ or timedelta(0)

    @property
    def tolerated(self) -> int:
        return self.failure_limit or 0


class Gate(_Model):
    query: str = Field(min_length=1)
    pass_: str = Field(alias="pass", min_length=1)
    on_fail: Action
    description: str | None = None
    # threshold: a failing reading is a failure; readiness: the gate must become true, and until it
    # passes it keeps the checkpoint waiting; only after `timeout` does it take its action.
    kind: Literal["threshold", "readiness"] | None = None
    # A query read at the same instant as the gate's own; the pass rule may then compare with it
    # (`<= 2x baseline`, `<= baseline + 0.005`).
    baseline: str | None = Field(default=None, min_length=1)
    timeout: Duration | None = None
    interval: Duration | None = None
    consecutive_passes: int | None = Field(default=None, ge=1, le=100)
    no_data: NoData | None = None
    for_: Duration | None = Field(default=None, alias="for")
    failure_limit: int | None = Field(default=None, ge=0, le=1000)


class Actuator(_Model):
    kind: Literal["webhook", "log"]
    url: str | None = None
    timeout: Duration = timedelta(seconds=5)


class Traffic(_Model):
    percent: float = Field(ge=0, le=100)
    cohort: str = Field(min_length=1)
    # An explicit, planned step down (a planned drain); without it a lower percent is refused.
    rollback: bool = False


class HoldSpec(_Model):
    release_by: list[str]
    mode: Literal["any", "all"] = "any"
    reason: str | None = None


class Checkpoint(_Model):
    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    title: str = Field(min_length=1)
    owner: str
    observers: list[str] = Field(default_factory=list)
    duration: Duration = timedelta(0)
    after: list[str] = Field(default_factory=list)
    window: CheckpointWindow | None = None
    protected: bool = False
    traffic: Traffic | None = None
    gates: list[str] = Field(default_factory=list)
    soak: Duration = timedelta(0)
    hold: HoldSpec | None = None
    # Gates watched from the moment this checkpoint has started until the run ends (besides its own).
    watch: list[str] = Field(default_factory=list)

    @property
    def planned_length(self) -> timedelta:
        """How long the checkpoint takes on the timeline: its own work plus any soak."""
        return self.duration + self.soak


_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")


def parse_hours(text: str) -> tuple[time, time] | None:
    """`"08:00-20:00"` as (start, end) wall-clock times; `24:00` as an end is midnight (00:00).
    An end before the start crosses midnight (`"20:00-08:00"`). None when malformed or empty."""
    found = _HOURS.match(text.strip())
    if found is None:
        return None
    start = time(int(found[1]), int(found[2]))
    if found[3] == "24":
        if found[4] != "00":
            return None
        end = time(0, 0)
    else:
        end = time(int(found[3]), int(found[4]))
    return None if start == end else (start, end)


def _check_hours(value: str | None) -> str | None:
    if value is not None and parse_hours(value) is None:
        raise ValueError(
            f'{value!r} is not a span of hours like "08:00-20:00" (HH:MM-HH:MM, start and end differ)'
        )
    return value


class CadenceStep(_Model):
    every: Duration
    until: Duration
    # Business hours in the plan window's offset (`"08:00-20:00"`; `"20:00-08:00"` crosses
    # midnight): outside them this step's checks are not due. None: every hour.
    between: str | None = None

    _hours = field_validator("between")(_check_hours)

    def in_hours(self, local: time) -> bool:
        """Whether `local` (a wall-clock time in the plan window's offset) is inside `between`."""
        hours = parse_hours(self.between) if self.between is not None else None
        if hours is None:
            return True
        start, end = hours
        if end == time(0, 0):  # until midnight
            return local >= start
        if start < end:
            return start <= local < end
        return local >= start or local < end  # across midnight


class HyperCare(_Model):
    """Gate checks after the last traffic checkpoint, on a cadence that widens over time.

    The run enters hyper-care when its last checkpoint completes (the timeline is one line, so
    that is after the last traffic checkpoint), and every `until` is measured from that moment.
    Each step checks every `every` until its `until`; hyper-care ends with the last step. An
    empty `gates` list means every gate of the plan.
    """

    gates: list[str] = Field(default_factory=list)
    cadence: list[CadenceStep] = Field(min_length=1)
    # A gate failing during hyper-care extends it to at least this long after the failure (checks
    # going on at the last step's interval past the cadence); None: the cadence step in force
    # starts again at the failure, and the steps after it follow.
    extend_on_breach: Duration | None = None

    @property
    def length(self) -> timedelta:
        """How long hyper-care lasts: the last (latest) `until` of the cadence."""
        return max(step.until for step in self.cadence)

    def step_at(self, elapsed: timedelta) -> tuple[int, CadenceStep] | None:
        """The cadence step in force `elapsed` after hyper-care began, or None once it is over."""
        for index, step in enumerate(self.cadence):
            if elapsed < step.until:
                return index, step
        return None

    def step_start(self, index: int) -> timedelta:
        """When step `index` begins: the latest `until` of the steps before it."""
        return max((s.until for s in self.cadence[:index]), default=timedelta(0))

    def slot_at(self, elapsed: timedelta, *, past_end: bool = False) -> int | None:
        """The number of the check interval `elapsed` falls in, counted across every step.

        Step i runs from the previous step's `until` to its own, one slot per `every`; its slots
        are numbered after all of the earlier steps' slots, so no two intervals of one hyper-care
        share a number, however the cadence widens. Past the last step: None, or with `past_end`
        (hyper-care extended on a breach) the last step's interval goes on, numbered after it.
        """
        found = self.step_at(elapsed)
        if found is None:
            if not past_end:
                return None
            found = (len(self.cadence), self.cadence[-1])
        index, step = found
        before = timedelta(0)
        slots = 0
        for earlier in self.cadence[:index]:
            span = max(earlier.until - before, timedelta(0))
            slots += -(-span // earlier.every)  # whole or part intervals: ceiling division
            before = max(before, earlier.until)
        return slots + max(elapsed - before, timedelta(0)) // step.every


class RehearsalAction(_Model):
    at: Duration
    user: str
    do: str


class Rehearsal(_Model):
    # gate name -> [[offset from window start, value or null for no-data], ...], a step function
    telemetry: dict[str, list[tuple[Duration, float | None]]] = Field(default_factory=dict)
    actions: list[RehearsalAction] = Field(default_factory=list)
    expect: Literal["completed", "rolled_back"] = "completed"
    # Gate value used when a gate has no timeline: a plausible passing value is the norm.
    default: Literal["pass", "no-data"] = "pass"


class Plan(_Model):
    plan: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    title: str = Field(min_length=1)
    change_record: str | None = None
    channel: str = Field(min_length=1)
    window: Window
    material_shift: Duration = timedelta(minutes=5)
    roles: dict[str, Role] = Field(min_length=1)
    authority: Authority
    telemetry: Telemetry = Telemetry(provider="simulated")
    gate_policy: GatePolicy = GatePolicy()
    gates: dict[str, Gate] = Field(default_factory=dict)
    actuator: Actuator = Actuator(kind="log")
    checkpoints: list[Checkpoint] = Field(min_length=1)
    hypercare: HyperCare | None = None
    # Gates watched from the first traffic shift until the run ends, in every state.
    watch: list[str] = Field(default_factory=list)
    rehearsal: Rehearsal | None = None
    # Optional, and left out of the canonical JSON when absent: plans written before bundles
    # existed keep their revision (and their sign-offs).
    bundle: Bundle | None = None

    def canonical_json(self) -> str:
        leave_out = {"bundle"} if self.bundle is None else None
        dumped = self.model_dump(mode="json", by_alias=True, exclude=leave_out)
        return canonical_json(_without_later_unset_fields(dumped))

    def is_readiness(self, gate: str) -> bool:
        found = self.gates.get(gate)
        return found is not None and found.kind == "readiness"

    @cached_property
    def revision(self) -> str:
        # Cached: a frozen plan's revision never changes, and hashing a large plan costs ms.
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @property
    def members(self) -> frozenset[str]:
        """Everyone who may ever act for a role of the plan (primaries and delegates)."""
        return frozenset(user for role in self.roles.values() for user in role.members)

    def checkpoint(self, checkpoint_id: str) -> Checkpoint:
        for checkpoint in self.checkpoints:
            if checkpoint.id == checkpoint_id:
                return checkpoint
        raise KeyError(checkpoint_id)

    def has_checkpoint(self, checkpoint_id: str) -> bool:
        return any(c.id == checkpoint_id for c in self.checkpoints)

    def gate_policy_of(self, gate: str) -> GatePolicy:
        """The policy in force for one gate: its own settings over the plan's `gate_policy`."""
        found = self.gates.get(gate)
        if found is None:
            return self.gate_policy
        own = {
            name: getattr(found, name)
            for name in ("interval", "consecutive_passes", "no_data", "for_", "failure_limit")
            if getattr(found, name) is not None
        }
        return self.gate_policy.model_copy(update=own) if own else self.gate_policy

    def baseline_series(self, gate: str) -> str:
        """The rehearsal telemetry name of a gate's baseline series."""
        return f"{gate}@baseline"

    def gate_intervals(self) -> tuple[timedelta, ...]:
        return tuple(self.gate_policy_of(g).interval for g in self.gates) or (self.gate_policy.interval,)

    def hypercare_gates(self) -> tuple[str, ...]:
        """The gates checked during hyper-care: the ones it names, or every gate of the plan."""
        if self.hypercare is None:
            return ()
        return tuple(self.hypercare.gates) or tuple(self.gates)


# Gate fields added after plans were approved: left unset they are not part of the revision, so a
# plan that does not use them keeps the revision it was signed off under.
_LATER_GATE_FIELDS = (
    "kind",
    "timeout",
    "interval",
    "consecutive_passes",
    "no_data",
    "for",
    "failure_limit",
    "baseline",
)


def _without_later_unset_fields(data: dict[str, Any]) -> dict[str, Any]:
    policy = {
        k: v
        for k, v in data.get("gate_policy", {}).items()
        if not (k in _LATER_GATE_FIELDS[5:] and v is None)
    }
    gates = {
        name: {k: v for k, v in gate.items() if not (k in _LATER_GATE_FIELDS and v is None)}
        for name, gate in data.get("gates", {}).items()
    }
    checkpoints = [_without_empty_watch(c) for c in data.get("checkpoints", [])]
    dumped = {**_without_empty_watch(data), "gate_policy": policy, "gates": gates, "checkpoints": checkpoints}
    care = data.get("hypercare")
    if isinstance(care, dict):
        # `extend_on_breach` and a step's `between` came later too.
        care = {k: v for k, v in care.items() if not (k == "extend_on_breach" and v is None)}
        care["cadence"] = [
            {k: v for k, v in step.items() if not (k == "between" and v is None)}
            for step in care.get("cadence", [])
        ]
        dumped["hypercare"] = care
    return dumped


def _without_empty_watch(data: dict[str, Any]) -> dict[str, Any]:
    # `watch:` came later too: a plan or checkpoint that watches nothing keeps its revision.
    return {k: v for k, v in data.items() if not (k == "watch" and not v)}


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the one form that is hashed anywhere."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Problem(_Model):
    path: str
    message: str
    line: int | None = None

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.path or '(top)'}: {self.message}"


class PlanInvalid(Exception):
    """A plan refused whole; `problems` has every problem found, in file order."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.render(source) for p in problems))

    def lines(self) -> list[str]:
        return [p.render(self.source) for p in self.problems]
