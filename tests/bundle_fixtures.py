"""A bundle plan for the use-case tests: the handler test plan plus a `bundle:` section.

`BundleWorld` is the handler tests' `World` opening this plan instead; the handoff window is
21:00-23:00 (-05:00), so the usual steps (open at 21:00, start a minute later) are inside it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from handlers import commands as c
from handlers.outcome import Outcome
from handlers.runs import open_run
from packets.plan import Plan
from packets.plan_load import load_plan
from tests.handler_fixtures import CHANNEL, ENG1, World, _all_chains_verify, plan_text

DIGEST = "sha256:" + "ab" * 32
OLD_DIGEST = "sha256:" + "cd" * 32
BUNDLE_YAML = f"""\
bundle:
  artifacts:
    - name: token-service
      version: 4.2.0
      digest: "{DIGEST}"
      provenance: {{source: https://ci.example.com/builds/812}}
      rollback: {{version: 4.1.9, digest: "{OLD_DIGEST}"}}
  cohorts: [merchant-a]
  dependencies:
    - name: hsm-firmware
      version: ">= 7.4"
      waiver: {{owner: payments-risk, state: resolved}}
  environment: {{scope: [prod-us-east-1]}}
  handoff:
    queue: prod-deploy-east
    window: {{start: 2026-11-24T21:00:00-05:00, end: 2026-11-24T23:00:00-05:00}}
"""


def bundle_plan_text(*, bundle: str = BUNDLE_YAML) -> str:
    return plan_text() + bundle


def bundle_plan(*, bundle: str = BUNDLE_YAML) -> Plan:
    return load_plan(bundle_plan_text(bundle=bundle), source="bundle-test.yaml")


@dataclass
class BundleWorld(World):
    bundle: str = BUNDLE_YAML

    @property
    def revision(self) -> str:
        return bundle_plan(bundle=self.bundle).revision

    async def open(self, *, user: str = ENG1) -> Outcome:
        outcome = await open_run(
            c.OpenRun(
                plan_text=bundle_plan_text(bundle=self.bundle),
                source="bundle-test.yaml",
                channel=CHANNEL,
                user=user,
            ),
            self.deps,
        )
        assert outcome.ok, outcome.message
        self.run = str(outcome.run)
        return outcome


@pytest.fixture
async def bundle_world(sqlite_uow: Any) -> AsyncIterator[BundleWorld]:
    """A `BundleWorld` on SQLite; at teardown every ledger chain must still verify."""
    w = BundleWorld(uow=sqlite_uow)
    yield w
    broken = await _all_chains_verify(sqlite_uow)
    assert not broken, broken
