"""Restoring a cohort from the hyper-care hold (`/cutover restore COHORT`), checked before moving."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.command_text import Usage, parse
from bot.intents import run_command
from handlers import commands as c
from handlers.restores import restore_cohort
from tests import handler_fixtures, hypercare_fixtures
from tests.handler_fixtures import ENG1, FAILING, PASSING, RISK1
from tests.hypercare_fixtures import HYPERCARE_SINCE, HYPERCARE_UNTIL

sqlite_uow = handler_fixtures.sqlite_uow
hypercare_world = hypercare_fixtures.hypercare_world


async def _rolled_back_and_ran_out(world) -> None:
    """auth-success failed 5 minutes into hyper-care: merchant-a back to 5 %; hyper-care ran out held."""
    await world.in_hypercare()
    world.clock.set(HYPERCARE_SINCE + timedelta(minutes=5))
    world.telemetry.set("auth-success", FAILING["auth-success"])
    await world.check()
    world.telemetry.set("auth-success", PASSING["auth-success"])
    world.clock.set(HYPERCARE_UNTIL + timedelta(minutes=30))
    await world.check()
    progress = await world.progress()
    assert progress.state == "held" and progress.traffic == {"merchant-a": 5.0}


def test_restore_takes_exactly_one_cohort():
    assert parse("restore merchant-A").extra == {"cohort": "merchant-A"}
    for text in ("restore", "restore a b", "restore <script>"):
        with pytest.raises(Usage, match="Usage: /cutover restore COHORT"):
            parse(text)


async def test_someone_outside_the_start_and_rollback_roles_may_not_restore(hypercare_world):
    world = hypercare_world
    await _rolled_back_and_ran_out(world)
    before = await world.snapshot()

    outcome = await restore_cohort(
        c.RestoreCohort(run=world.run, user=RISK1, cohort="merchant-a"), world.deps
    )

    assert not outcome.ok
    after = await world.snapshot()
    handler_fixtures.assert_refused_and_unchanged(outcome, before, after)


async def test_a_failing_gate_withholds_the_restore_and_takes_its_action(hypercare_world):
    world = hypercare_world
    await _rolled_back_and_ran_out(world)
    world.telemetry.set("webhook-latency", FAILING["webhook-latency"])  # pause

    outcome = await restore_cohort(c.RestoreCohort(run=world.run, user=ENG1, cohort="merchant-a"), world.deps)

    assert outcome.ok and "stays at 5%" in outcome.message and "webhook-latency" in outcome.message
    progress = await world.progress()
    assert progress.traffic == {"merchant-a": 5.0} and progress.paused is not None
    assert world.actuator.percents("merchant-a") == [5.0, 100.0, 5.0]
    assert len(await world.entries("restore_withheld")) == 1


async def test_a_restore_shifts_the_cohort_back_through_the_actuator_and_hyper_care_runs_again_to_completion(
    hypercare_world,
):
    world = hypercare_world
    await _rolled_back_and_ran_out(world)
    parsed = parse("restore merchant-a")
    command = await run_command(parsed, run=world.run, user=ENG1, deps=world.deps)
    assert isinstance(command, c.RestoreCohort)

    outcome = await restore_cohort(command, world.deps)

    assert outcome.ok and "goes back to 100%" in outcome.message, outcome.message
    assert world.actuator.percents("merchant-a") == [5.0, 100.0, 5.0, 100.0]
    progress = await world.progress()
    restarted = HYPERCARE_UNTIL + timedelta(minutes=30)
    assert progress.state == "hypercare" and progress.hypercare_since == restarted
    assert progress.open_holds() == ()
    [restored] = await world.entries("traffic_restored")
    assert restored.actor == ENG1 and restored.payload["percent"] == 100.0
    world.clock.set(restarted + timedelta(hours=4))
    await world.check()
    assert (await world.progress()).state == "completed"
