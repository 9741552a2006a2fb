"""Hyper-care that goes on after a breach (`extend_on_breach`), and cadence steps with business hours."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from handlers import commands as c
from handlers.alerts import alert_fired
from handlers.gate_checks import next_interval
from handlers.holds import release_hold
from handlers.outcome import Outcome
from handlers.runs import open_run
from packets.plan import Plan, PlanInvalid
from packets.plan_load import load_plan
from tests import handler_fixtures
from tests.handler_fixtures import CHANNEL, ENG1, FAILING, PASSING, REL1
from tests.hypercare_fixtures import HYPERCARE_PLAN_YAML, HYPERCARE_SINCE, HyperCareWorld

sqlite_uow = handler_fixtures.sqlite_uow

DEFAULT_CADENCE = """\
hypercare:
  cadence:
    - {every: 5m, until: 1h}
    - {every: 15m, until: 2h}
    - {every: 1h, until: 4h}
"""


def plan_text(hypercare: str) -> str:
    text = HYPERCARE_PLAN_YAML.format(channel=CHANNEL)
    assert DEFAULT_CADENCE in text
    return text.replace(DEFAULT_CADENCE, hypercare)


EXTENDED = """\
hypercare:
  extend_on_breach: 90m
  cadence:
    - {every: 5m, until: 1h}
"""
# Hyper-care begins at 21:36 (-05:00); the second step checks only in the day.
BUSINESS_HOURS = """\
hypercare:
  cadence:
    - {every: 5m, until: 1h}
    - {every: 1h, until: 16h, between: "08:00-20:00"}
"""


@dataclass
class VariantWorld(HyperCareWorld):
    text: str = ""

    @property
    def plan(self) -> Plan:
        return load_plan(self.text, source="variant.yaml")

    @property
    def revision(self) -> str:
        return self.plan.revision

    async def open(self, *, user: str = ENG1) -> Outcome:
        outcome = await open_run(
            c.OpenRun(plan_text=self.text, source="variant.yaml", channel=CHANNEL, user=user), self.deps
        )
        assert outcome.ok, outcome.message
        self.run = str(outcome.run)
        return outcome


@pytest.fixture
async def make_world(sqlite_uow: Any) -> AsyncIterator[Any]:
    def make(hypercare: str) -> VariantWorld:
        return VariantWorld(uow=sqlite_uow, text=plan_text(hypercare))

    yield make
    async with sqlite_uow.transaction(read_only=True) as tx:
        assert all(v.ok for v in await tx.ledger.verify_all())


async def tick_at_cadence(world: VariantWorld, *, limit: int = 400) -> list[tuple[timedelta, int]]:
    """Tick as the scheduler does until the run completes: (time since hyper-care began, gates measured)."""
    seen: list[tuple[timedelta, int]] = []
    for _ in range(limit):
        progress = await world.progress()
        if progress.state == "completed":
            return seen
        interval = next_interval(world.plan, progress, world.clock.now())
        assert interval is not None, progress.state
        world.clock.advance(interval)
        before = len(world.telemetry.measured)
        outcome = await world.check()
        assert outcome.ok, outcome.message
        seen.append((world.clock.now() - HYPERCARE_SINCE, len(world.telemetry.measured) - before))
    raise AssertionError("the run never completed")


# -- the plan file -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hypercare", "path", "says"),
    [
        ("  extend_on_breach: soon\n", "hypercare.extend_on_breach", ""),
        ("  extend_on_breach: 0m\n", "hypercare.extend_on_breach", "longer than 0"),
        ('    - {every: 1h, until: 2h, between: "8-20"}\n', "hypercare.cadence.1.between", "08:00-20:00"),
        ('    - {every: 1h, until: 2h, between: "08:00-08:00"}\n', "hypercare.cadence.1.between", "differ"),
        ('    - {every: 1h, until: 2h, between: "08:00-25:00"}\n', "hypercare.cadence.1.between", ""),
    ],
)
def test_a_malformed_breach_extension_or_business_hours_refuses_the_plan_naming_the_field(
    hypercare, path, says
):
    if hypercare.startswith("  extend"):
        block = "hypercare:\n" + hypercare + "  cadence:\n    - {every: 5m, until: 1h}\n"
    else:
        block = "hypercare:\n  cadence:\n    - {every: 5m, until: 1h}\n" + hypercare

    with pytest.raises(PlanInvalid) as refused:
        load_plan(plan_text(block), source="variant.yaml")

    problems = [p for p in refused.value.problems if p.path == path]
    assert problems, refused.value.lines()
    assert says in problems[0].message


def test_plans_that_use_neither_keep_their_revision_and_plans_that_do_get_another():
    plain = load_plan(plan_text(DEFAULT_CADENCE), source="a.yaml")
    assert "extend_on_breach" not in plain.canonical_json() and "between" not in plain.canonical_json()
    hours = load_plan(plan_text(BUSINESS_HOURS), source="b.yaml")
    assert '"between":"08:00-20:00"' in hours.canonical_json()
    assert (
        hours.revision
        != load_plan(plan_text(BUSINESS_HOURS.replace(', between: "08:00-20:00"', "")), source="c").revision
    )


# -- extend_on_breach --------------------------------------------------------------------------------


async def test_a_breach_with_extend_on_breach_keeps_hyper_care_going_that_long_after_the_failure(make_world):
    world = make_world(EXTENDED)
    await world.in_hypercare()
    world.clock.set(HYPERCARE_SINCE + timedelta(minutes=10))
    world.telemetry.set("lookup-latency", FAILING["lookup-latency"])

    await world.check()  # fails: held, and hyper-care now lasts until 10m + 90m

    [extended] = await world.entries("hypercare_extended")
    assert extended.payload["until"] == (HYPERCARE_SINCE + timedelta(minutes=100)).isoformat()
    assert extended.payload["was_until"] == (HYPERCARE_SINCE + timedelta(hours=1)).isoformat()
    world.telemetry.set("lookup-latency", PASSING["lookup-latency"])
    assert (await release_hold(c.ReleaseHold(run=world.run, user=REL1, hold="hypercare"), world.deps)).ok
    checks = await tick_at_cadence(world)

    progress = await world.progress()
    assert progress.ended_at == HYPERCARE_SINCE + timedelta(minutes=100)
    # Past the cadence's hour the last step's five minutes go on, every gate measured each time.
    late = [(when, n) for when, n in checks if when > timedelta(hours=1)]
    assert [when for when, _ in late][:3] == [timedelta(minutes=m) for m in (65, 70, 75)]
    assert all(n == 5 for when, n in late if when < timedelta(minutes=100))
    [ended] = await world.entries("hypercare_ended")
    assert ended.payload["until"] == (HYPERCARE_SINCE + timedelta(minutes=100)).isoformat()


async def test_without_extend_on_breach_the_step_in_force_starts_again_at_the_failure(make_world):
    world = make_world(DEFAULT_CADENCE)
    await world.in_hypercare()
    world.clock.set(HYPERCARE_SINCE + timedelta(minutes=70))  # the 15-minute step (1h to 2h)
    world.telemetry.set("webhook-latency", FAILING["webhook-latency"])

    await world.check()  # pause

    [extended] = await world.entries("hypercare_extended")
    # The 15-minute step starts again at 70m: it runs to 2h10m and the hourly one to 4h10m.
    assert extended.payload["until"] == (HYPERCARE_SINCE + timedelta(hours=4, minutes=10)).isoformat()
    world.clock.advance(timedelta(minutes=5))
    again = await world.check()  # the failing reading was this interval's check
    assert "already checked" in again.message
    progress = await world.progress()
    assert next_interval(world.plan, progress, world.clock.now()) == timedelta(minutes=15)


# -- business hours ------------------------------------------------------------------------------


async def test_outside_a_steps_business_hours_its_checks_are_not_due_and_inside_them_they_are(make_world):
    world = make_world(BUSINESS_HOURS)
    await world.in_hypercare()
    world.clock.set(HYPERCARE_SINCE + timedelta(hours=1, minutes=24))  # 23:00 (-05:00): night
    measured = len(world.telemetry.measured)

    night = await world.check()

    assert night.ok and len(world.telemetry.measured) == measured
    world.clock.set(HYPERCARE_SINCE + timedelta(hours=10, minutes=24))  # 08:00 (-05:00) the next day
    morning = await world.check()
    assert "5 gates checked for hypercare" in morning.message
    world.clock.set(HYPERCARE_SINCE + timedelta(hours=16))  # 13:36: hyper-care ran its course
    await world.check()
    assert (await world.progress()).state == "completed"


async def test_a_pushed_alert_at_night_counts_though_the_scheduled_checks_wait_for_the_morning(make_world):
    world = make_world(BUSINESS_HOURS)
    await world.in_hypercare()
    world.clock.set(HYPERCARE_SINCE + timedelta(hours=3))  # 00:36: night

    outcome = await alert_fired(
        c.AlertFired(plan="hypercare-test", gate="webhook-latency", alert="WebhookLatencyHigh"), world.deps
    )

    assert outcome.counted == 1
    progress = await world.progress()
    assert progress.state == "paused"
    [received] = await world.entries("alert_received")
    assert received.payload["checkpoint"] == "hypercare"
