"""Shared fixtures for the use-case tests (tests/test_handlers_*.py).

A small plan as YAML (a protected preflight with a window, a traffic checkpoint with gates and a
soak, a hold checkpoint, a protected two-person hold), a `SimulatedClock`, telemetry whose gate
values a test sets by hand, an actuator that records every shift and can refuse, and a `World`
that wires them into `handlers.deps.Deps` (through `bot.wiring.build_deps`, as serve does) over a
fresh database and knows the usual steps of a run (open, sign off, start, release the preflight,
report it done ...).

Fakes record instead of mocking: a test asks the telemetry which gates it measured and the
actuator which shifts it was asked for.

Import the fixtures into a test module (`from tests.handler_fixtures import world  # noqa: F401`):
pytest collects fixtures from a module's namespace. Every `World` checks at teardown that every
ledger chain in its database still verifies, so each scenario ends with a verified ledger.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.clock import SimulatedClock
from bot.wiring import build_deps
from handlers import commands as c
from handlers.adoption import acknowledge, adopt_packet
from handlers.deps import Deps
from handlers.holds import release_hold
from handlers.outcome import Outcome
from handlers.ports import ActuationResult, Measurement, Shift
from handlers.resequence import report_done
from handlers.runs import ask_engine, open_run, sign_off
from packets.engine.progress import RunProgress
from packets.plan import Plan
from packets.plan_load import load_plan

CHANNEL = "C0ROOM"
# 21:00 at -05:00, the plan window's start.
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)

REL1, REL2 = "U0REL1", "U0REL2"  # release-authority: primary, approved delegate
ENG1, ENG2 = "U0ENG1", "U0ENG2"  # release-eng: primary, approved delegate
RISK1 = "U0RISK1"  # payments-risk
SEC1 = "U0SEC1"  # security: observes the preflight only
STRANGER = "U0NOBODY"  # in no role of the plan

# Gate -> the action its failure takes (the plan's rollback matrix), and a passing value.
GATE_ACTIONS = {
    "auth-success": "rollback_cohort",
    "lookup-latency": "hold",
    "fallback-health": "freeze",
    "error-rate": "global_rollback",
    "webhook-latency": "pause",
}
PASSING = {
    "auth-success": 0.999,
    "lookup-latency": 0.12,
    "fallback-health": 1.0,
    "error-rate": 0.001,
    "webhook-latency": 1.5,
}
FAILING = {
    "auth-success": 0.90,
    "lookup-latency": 0.31,
    "fallback-health": 0.0,
    "error-rate": 0.2,
    "webhook-latency": 9.0,
}

PLAN_YAML = """\
plan: handler-test
title: Card-token lookups move to the tokenization service (handler tests)
change_record: CHG-1
channel: {channel}
window: {{start: 2026-11-24T21:00:00-05:00, end: 2026-11-25T01:00:00-05:00}}
material_shift: 5m
roles:
  release-authority: {{primary: U0REL1, delegates: [U0REL2]}}
  release-eng: {{primary: U0ENG1, delegates: [U0ENG2]}}
  payments-risk: {{primary: U0RISK1}}
  security: {{primary: U0SEC1}}
authority:
  signoff: [release-authority, payments-risk]
  adopt_packets: [release-authority]
  change_delegates: [release-authority]
  start_and_rollback: [release-authority, release-eng]
telemetry: {{provider: simulated}}
gate_policy: {{interval: 1m, consecutive_passes: 3, no_data: fail}}
gates:
  auth-success: {{query: auth, pass: ">= 0.995", on_fail: rollback_cohort}}
  lookup-latency: {{query: latency, pass: "<= 0.25", on_fail: hold}}
  fallback-health: {{query: fallback, pass: ">= 1", on_fail: freeze}}
  error-rate: {{query: errors, pass: "< 0.05", on_fail: global_rollback}}
  webhook-latency: {{query: webhooks, pass: "< 5", on_fail: pause}}
actuator: {{kind: log}}
checkpoints:
  - id: preflight
    title: Key replication confirmed
    owner: release-eng
    observers: [security]
    duration: 15m
    protected: true
    window: {{not_after: 2026-11-24T21:30:00-05:00}}
  - id: canary
    title: Shift merchant cohort A
    owner: release-eng
    observers: [payments-risk]
    after: [preflight]
    traffic: {{percent: 5, cohort: merchant-a}}
    soak: 10m
    gates: [auth-success, lookup-latency, fallback-health, error-rate, webhook-latency]
  - id: widen
    title: Release to widen beyond cohort A
    owner: release-authority
    after: [canary]
    hold: {{release_by: [release-authority], reason: canary evidence reviewed}}
  - id: retire
    title: Retire the legacy path
    owner: release-authority
    observers: [payments-risk]
    after: [widen]
    duration: 10m
    protected: true
    hold: {{release_by: [release-authority, payments-risk], mode: all, reason: two-person rule}}
"""


def plan_text(*, channel: str = CHANNEL) -> str:
    return PLAN_YAML.format(channel=channel)


def the_plan() -> Plan:
    return load_plan(plan_text(), source="handler-test.yaml")


def at(hhmm: str) -> datetime:
    """A wall-clock time of the cutover evening (-05:00), as an aware datetime: at("21:40")."""
    hours, minutes = (int(x) for x in hhmm.split(":"))
    return T0 + timedelta(hours=hours - 21, minutes=minutes)


# -- fakes --------------------------------------------------------------------------------------


class RecordingTelemetry:
    """`Telemetry` whose gate values a test sets; records every measurement it was asked for."""

    def __init__(self, values: dict[str, float | None] | None = None) -> None:
        self.values: dict[str, float | None] = dict(PASSING if values is None else values)
        self.measured: list[tuple[str, datetime]] = []

    def set(self, gate: str, value: float | None) -> None:
        self.values[gate] = value

    async def measure(self, *, gate: str, query: str, at: datetime) -> Measurement:
        self.measured.append((gate, at))
        value = self.values.get(gate)
        return Measurement(value, "" if value is not None else "no samples in range")


class RecordingActuator:
    """`Actuator` that records every shift; answers ok unless told to refuse."""

    def __init__(self) -> None:
        self.shifts: list[Shift] = []
        self.refusing: str | None = None

    def refuse(self, detail: str = "control plane says no") -> None:
        self.refusing = detail

    async def shift(self, shift: Shift) -> ActuationResult:
        self.shifts.append(shift)
        if self.refusing is not None:
            return ActuationResult(ok=False, detail=self.refusing)
        return ActuationResult(ok=True, detail="recorded")

    def percents(self, cohort: str) -> list[float]:
        return [s.percent for s in self.shifts if s.cohort == cohort]


# -- what the database holds, to compare before and after ----------------------------------------


@dataclass(frozen=True)
class Snapshot:
    state: str
    progress: dict[str, Any]
    acting: dict[str, str]
    lock_version: int
    authoritative_version: int | None
    packets: tuple[tuple[int, str], ...]
    outbox: int
    ledger_kinds: tuple[str, ...]
    holds: tuple[tuple[str, str], ...]
    acks: int
    gate_rows: int
    signoffs: int
    acting_changes: int

    @property
    def ledger(self) -> int:
        return len(self.ledger_kinds)


async def snapshot(uow: Any, run: str) -> Snapshot:
    async with uow.transaction(read_only=True) as tx:
        row = await tx.runs.get(run)
        assert row is not None, f"no run {run}"
        packets = await tx.packets.for_run(run)
        outbox = await tx.outbox.for_run(run)
        entries = await tx.ledger.entries(run)
        holds = await tx.holds.for_run(run)
        acks = await tx.acks.for_run(run)
        gate_rows = await tx.gate_results.for_run(run)
    return Snapshot(
        state=row.state,
        progress=row.progress,
        acting=row.acting,
        lock_version=row.lock_version,
        authoritative_version=row.authoritative_version,
        packets=tuple((p.version, p.state) for p in packets),
        outbox=len(outbox),
        ledger_kinds=tuple(e.kind for e in entries),
        holds=tuple((h.hold_id, str(h.state)) for h in holds),
        acks=len(acks),
        gate_rows=len(gate_rows),
        # The ledger is the durable record of sign-offs and delegate switches (no tables of their own).
        signoffs=sum(1 for e in entries if e.kind == "signoff"),
        acting_changes=sum(1 for e in entries if e.kind == "acting_changed"),
    )


def assert_refused_and_unchanged(
    outcome: Outcome, before: Snapshot, after: Snapshot, *, says: Iterable[str] = ()
) -> None:
    """A refusal: ok=False with a reason, exactly one new `refused` entry, nothing else changed."""
    assert outcome.ok is False
    assert outcome.message.strip()
    for words in says:
        assert words in outcome.message, f"{words!r} not in {outcome.message!r}"
    assert after.ledger_kinds == (*before.ledger_kinds, "refused"), after.ledger_kinds[before.ledger :]
    assert after.progress == before.progress
    assert after.lock_version == before.lock_version
    assert after.state == before.state
    assert after.acting == before.acting
    assert after.authoritative_version == before.authoritative_version
    assert after.packets == before.packets
    assert after.outbox == before.outbox
    assert after.holds == before.holds
    assert after.acks == before.acks
    assert after.gate_rows == before.gate_rows
    assert after.signoffs == before.signoffs
    assert after.acting_changes == before.acting_changes


# -- the world a use case runs in ----------------------------------------------------------------


@dataclass
class World:
    uow: Any
    clock: SimulatedClock = field(default_factory=lambda: SimulatedClock(T0))
    telemetry: RecordingTelemetry = field(default_factory=RecordingTelemetry)
    actuator: RecordingActuator = field(default_factory=RecordingActuator)
    changed: list[str] = field(default_factory=list)
    run: str = ""

    @property
    def deps(self) -> Deps:
        return build_deps(
            uow=self.uow,
            clock=self.clock,
            telemetry_for=lambda _plan: self.telemetry,
            actuator_for=lambda _plan: self.actuator,
            on_change=self.changed.append,
            drain_shifts=True,
        )

    @property
    def revision(self) -> str:
        return the_plan().revision

    def advance(self, minutes: float) -> None:
        self.clock.advance(timedelta(minutes=minutes))

    def set_time(self, hhmm: str) -> None:
        self.clock.set(at(hhmm))

    # -- reading back ------------------------------------------------------------------------

    async def snapshot(self) -> Snapshot:
        return await snapshot(self.uow, self.run)

    async def progress(self) -> RunProgress:
        async with self.uow.transaction(read_only=True) as tx:
            row = await tx.runs.get(self.run)
        return RunProgress.from_json(row.progress["engine"])

    async def entries(self, kind: str | None = None) -> list[Any]:
        async with self.uow.transaction(read_only=True) as tx:
            entries = await tx.ledger.entries(self.run)
        return [e for e in entries if kind is None or e.kind == kind]

    async def outbox(self, kind: str | None = None) -> list[Any]:
        async with self.uow.transaction(read_only=True) as tx:
            rows = await tx.outbox.for_run(self.run)
        return [r for r in rows if kind is None or r.kind == kind]

    async def packet_rows(self) -> list[Any]:
        async with self.uow.transaction(read_only=True) as tx:
            return await tx.packets.for_run(self.run)

    async def hold_rows(self) -> list[Any]:
        async with self.uow.transaction(read_only=True) as tx:
            return await tx.holds.for_run(self.run)

    async def gate_rows(self) -> list[Any]:
        async with self.uow.transaction(read_only=True) as tx:
            return await tx.gate_results.for_run(self.run)

    async def ledger_verifies(self) -> bool:
        async with self.uow.transaction(read_only=True) as tx:
            verdicts = await tx.ledger.verify_all()
        return all(v.ok for v in verdicts) and bool(verdicts)

    # -- the usual steps ---------------------------------------------------------------------

    async def open(self, *, user: str = ENG1) -> Outcome:
        outcome = await open_run(
            c.OpenRun(plan_text=plan_text(), source="handler-test.yaml", channel=CHANNEL, user=user),
            self.deps,
        )
        assert outcome.ok, outcome.message
        self.run = str(outcome.run)
        return outcome

    async def signed(self) -> None:
        """Open and sign off (both sign-off roles): the run is ready."""
        await self.open()
        for user in (REL1, RISK1):
            outcome = await sign_off(c.SignOff(run=self.run, user=user, revision=self.revision), self.deps)
            assert outcome.ok, outcome.message

    async def started(self) -> None:
        """Signed and started a minute in: the protected preflight is held for a release."""
        await self.signed()
        self.advance(1)
        outcome = await ask_engine(c.EngineIntent(run=self.run, user=ENG1, move=c.Move.START), self.deps)
        assert outcome.ok, outcome.message

    async def preflight_running(self) -> None:
        """Started, and the release authority let the protected preflight run."""
        await self.started()
        self.advance(1)
        outcome = await release_hold(c.ReleaseHold(run=self.run, user=REL1, hold="preflight"), self.deps)
        assert outcome.ok, outcome.message

    async def canary_soaking(self) -> None:
        """The preflight is done (at 21:17): the canary's traffic is shifted and soaking."""
        await self.preflight_running()
        self.set_time("21:17")
        outcome = await report_done(c.ReportDone(run=self.run, user=ENG1, checkpoint="preflight"), self.deps)
        assert outcome.ok, outcome.message
        # Check before moving: the canary's gates are read for its shift, which then goes out.
        outcome = await self.check()
        assert outcome.ok, outcome.message

    async def check(self) -> Outcome:
        from handlers.gate_checks import check_gates

        return await check_gates(c.CheckGates(run=self.run), self.deps)

    async def canary_passed(self) -> None:
        """Eleven minutes of passing gates: the canary is done and the `widen` hold is open."""
        await self.canary_soaking()
        for _ in range(11):
            self.advance(1)
            outcome = await self.check()
            assert outcome.ok, outcome.message

    async def propose_late(
        self, checkpoint: str = "canary", until: str = "21:40", *, user: str = ENG1
    ) -> Outcome:
        from handlers.resequence import report_late

        outcome = await report_late(
            c.ReportLate(
                run=self.run, user=user, checkpoint=checkpoint, until=at(until), reason="still draining"
            ),
            self.deps,
        )
        assert outcome.ok, outcome.message
        return outcome

    async def adopt(self, version: int | None = None, *, user: str = REL1) -> Outcome:
        return await adopt_packet(c.AdoptPacket(run=self.run, user=user, version=version), self.deps)

    async def ack(self, user: str, version: int | None = None) -> Outcome:
        return await acknowledge(c.Acknowledge(run=self.run, user=user, version=version), self.deps)


async def _all_chains_verify(uow: Any) -> list[str]:
    async with uow.transaction(read_only=True) as tx:
        return [v.describe() for v in await tx.ledger.verify_all() if not v.ok]


@pytest.fixture
async def sqlite_uow(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Any]:
    """A unit of work over a fresh, migrated SQLite file (use-case tests run on SQLite)."""
    from store.db import make_engine
    from store.uow import UnitOfWork

    path = tmp_path / "handlers.db"
    shutil.copyfile(sqlite_template, path)
    unit_of_work = UnitOfWork(make_engine(f"sqlite+aiosqlite:///{path}"))
    try:
        yield unit_of_work
    finally:
        await unit_of_work.dispose()


@pytest.fixture
async def world(sqlite_uow: Any) -> AsyncIterator[World]:
    """A `World` on SQLite; at teardown every ledger chain must still verify."""
    w = World(uow=sqlite_uow)
    yield w
    broken = await _all_chains_verify(sqlite_uow)
    assert not broken, broken


@pytest.fixture
async def any_world(uow: Any) -> AsyncIterator[World]:
    """A `World` on each backend of tests/conftest.py (SQLite, and PostgreSQL when configured)."""
    w = World(uow=uow)
    yield w
    broken = await _all_chains_verify(uow)
    assert not broken, broken
