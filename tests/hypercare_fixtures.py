"""A plan with hyper-care for the use-case tests, and a `World` that runs it (tests/handler_fixtures.py).

The cutover: a plain preflight, a canary at 5 % of merchant-a, then all of merchant-a (both gated
on the five gates of handler_fixtures, one per action of the rollback matrix), followed by four
hours of hyper-care on every gate: every 5 minutes for the first hour, every 15 minutes for the
second, every hour for the last two.

`HyperCareWorld.in_hypercare()` drives it there with passing gates: the full stage completes at
21:36 and hyper-care runs until 01:36.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from handlers import commands as c
from handlers.outcome import Outcome
from handlers.resequence import report_done
from handlers.runs import open_run
from packets.plan import Plan
from packets.plan_load import load_plan
from tests import handler_fixtures
from tests.handler_fixtures import CHANNEL, ENG1, World, at

HYPERCARE_PLAN_YAML = """\
plan: hypercare-test
title: Card-token lookups move to the tokenization service, with hyper-care (handler tests)
change_record: CHG-2
channel: {channel}
window: {{start: 2026-11-24T21:00:00-05:00, end: 2026-11-25T01:00:00-05:00}}
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
  - id: canary
    title: Shift merchant cohort A to 5 %
    owner: release-eng
    after: [preflight]
    traffic: {{percent: 5, cohort: merchant-a}}
    soak: 10m
    gates: [auth-success, lookup-latency, fallback-health, error-rate, webhook-latency]
  - id: full
    title: All of merchant cohort A
    owner: payments-risk
    after: [canary]
    traffic: {{percent: 100, cohort: merchant-a}}
    soak: 10m
    gates: [auth-success, lookup-latency, fallback-health, error-rate, webhook-latency]
hypercare:
  cadence:
    - {{every: 5m, until: 1h}}
    - {{every: 15m, until: 2h}}
    - {{every: 1h, until: 4h}}
"""

# When the last checkpoint completes (hyper-care begins) and when hyper-care ends.
HYPERCARE_SINCE = at("21:36")
HYPERCARE_UNTIL = HYPERCARE_SINCE + timedelta(hours=4)


def hypercare_plan_text(*, channel: str = CHANNEL) -> str:
    return HYPERCARE_PLAN_YAML.format(channel=channel)


def hypercare_plan() -> Plan:
    return load_plan(hypercare_plan_text(), source="hypercare-test.yaml")


@dataclass
class HyperCareWorld(World):
    """`World` over the hyper-care plan; the usual steps (signed, started, check ...) work unchanged."""

    @property
    def revision(self) -> str:
        return hypercare_plan().revision

    async def open(self, *, user: str = ENG1) -> Outcome:
        outcome = await open_run(
            c.OpenRun(
                plan_text=hypercare_plan_text(), source="hypercare-test.yaml", channel=CHANNEL, user=user
            ),
            self.deps,
        )
        assert outcome.ok, outcome.message
        self.run = str(outcome.run)
        return outcome

    async def in_hypercare(self) -> None:
        """Started at 21:01, preflight done at 21:16, the canary done at 21:26, full at 21:36."""
        await self.started()
        self.set_time("21:16")
        outcome = await report_done(c.ReportDone(run=self.run, user=ENG1, checkpoint="preflight"), self.deps)
        assert outcome.ok, outcome.message
        # Check before moving: the canary's gates are read for its shift, which then goes out.
        outcome = await self.check()
        assert outcome.ok, outcome.message
        for minute in range(17, 37):
            self.set_time(f"21:{minute}")
            outcome = await self.check()
            assert outcome.ok, outcome.message
        progress = await self.progress()
        assert progress.state == "hypercare", progress.state
        assert progress.hypercare_since == HYPERCARE_SINCE


@pytest.fixture
async def hypercare_world(sqlite_uow: Any) -> AsyncIterator[HyperCareWorld]:
    """A `HyperCareWorld` on SQLite; at teardown every ledger chain must still verify."""
    w = HyperCareWorld(uow=sqlite_uow)
    yield w
    async with sqlite_uow.transaction(read_only=True) as tx:
        broken = [v.describe() for v in await tx.ledger.verify_all() if not v.ok]
    assert not broken, broken


sqlite_uow = handler_fixtures.sqlite_uow
