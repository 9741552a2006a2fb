"""Scheduled gate checks: a pass streak completes a soaking checkpoint; a failure takes its action."""

from __future__ import annotations

import asyncio

import pytest

from handlers import commands as c
from handlers.gate_checks import advance
from packets.gates import Outcome as GateOutcome
from tests import handler_fixtures
from tests.handler_fixtures import (
    CHANNEL,
    FAILING,
    GATE_ACTIONS,
    PASSING,
    at,
)

# pytest finds fixtures in the module namespace.
any_world = handler_fixtures.any_world
sqlite_uow = handler_fixtures.sqlite_uow
world = handler_fixtures.world

GATES = sorted(GATE_ACTIONS)


async def test_a_streak_of_passes_after_the_soak_completes_the_traffic_checkpoint(world):
    await world.canary_soaking()  # shifted at 21:17, soaks until 21:27

    for minute in range(18, 27):
        world.set_time(f"21:{minute}")
        assert (await world.check()).ok
        assert (await world.progress()).checkpoints["canary"].state == "soaking", f"done early at 21:{minute}"

    world.set_time("21:27")
    outcome = await world.check()

    assert outcome.ok, outcome.message
    progress = await world.progress()
    assert progress.checkpoints["canary"].state == "done"
    assert progress.checkpoints["canary"].done_by == ("engine",)
    assert progress.checkpoints["widen"].state == "held"
    completed = [
        e for e in await world.entries("checkpoint_completed") if e.payload["checkpoint"] == "canary"
    ]
    assert len(completed) == 1
    # The evidence that justified it: the last three passes of every gate.
    assert sorted({g["gate"] for g in completed[0].payload["gates"]}) == GATES
    assert len(completed[0].payload["gates"]) == 3 * len(GATES)
    assert all(g["outcome"] == "pass" for g in completed[0].payload["gates"])
    # Ten slots of soak, and the one read for the shift at 21:17 (check before moving).
    assert len(await world.gate_rows()) == 11 * len(GATES)
    assert world.actuator.percents("merchant-a") == [5.0]


@pytest.mark.parametrize("gate", GATES)
async def test_a_failing_gate_takes_the_action_the_plan_gives_it(world, gate):
    await world.canary_soaking()
    world.set_time("21:18")
    world.telemetry.set(gate, FAILING[gate])

    outcome = await world.check()

    assert outcome.ok, outcome.message
    assert f"failing: {gate}" in outcome.message
    action = GATE_ACTIONS[gate]
    progress = await world.progress()
    [failed] = await world.entries("gate_failed")
    assert failed.payload["action"] == action and failed.actor == f"gate:{gate}"
    alert = (await world.outbox("gate_alert"))[-1]
    assert alert.recipient == CHANNEL and alert.payload["gate"] == gate and alert.payload["action"] == action
    gate_holds = [h for h in progress.open_holds() if h.source == "gate"]
    if action == "hold":
        assert progress.state == "held"
        assert [h.checkpoint for h in gate_holds] == ["canary"]
        assert progress.traffic == {"merchant-a": 5.0}
        assert world.actuator.percents("merchant-a") == [5.0]
    elif action == "rollback_cohort":
        assert progress.state == "held"
        assert progress.checkpoints["canary"].state == "held"
        assert [h.checkpoint for h in gate_holds] == ["canary"]
        assert progress.traffic == {"merchant-a": 0.0}
        assert world.actuator.percents("merchant-a") == [5.0, 0.0]
    elif action == "freeze":
        assert progress.state == "frozen"
        assert progress.frozen is not None and progress.frozen.by == f"gate:{gate}"
        assert progress.traffic == {"merchant-a": 5.0}
        assert world.actuator.percents("merchant-a") == [5.0]
    elif action == "global_rollback":
        assert progress.state == "rolled_back"
        assert progress.traffic == {"merchant-a": 0.0}
        assert world.actuator.percents("merchant-a") == [5.0, 0.0]
        assert progress.open_holds() == ()
    else:
        assert action == "pause"
        assert progress.state == "paused"
        assert progress.traffic == {"merchant-a": 5.0}


async def test_no_data_counts_as_a_failure(world):
    await world.canary_soaking()
    world.set_time("21:18")
    world.telemetry.set("lookup-latency", None)

    outcome = await world.check()

    assert "failing: lookup-latency" in outcome.message
    rows = {r.gate: r for r in await world.gate_rows()}
    assert rows["lookup-latency"].outcome == GateOutcome.NO_DATA and rows["lookup-latency"].value is None
    progress = await world.progress()
    assert progress.state == "held"
    assert [(h.checkpoint, h.source) for h in progress.open_holds()] == [("canary", "gate")]
    # The alert speaks the template's vocabulary (bot/templates/gate_alert.j2).
    assert (await world.outbox("gate_alert"))[-1].payload["outcome"] == "no_data"


async def test_a_slot_checked_twice_is_recorded_and_acted_on_once(world):
    await world.canary_soaking()
    world.set_time("21:18")

    first = await world.check()
    after_first = await world.snapshot()
    second = await world.check()

    assert first.ok and second.ok
    assert "already checked" in second.message
    # Leaving out the slot read for the shift at 21:17 (check before moving).
    rows = [r for r in await world.gate_rows() if r.slot != 17]
    assert sorted(r.gate for r in rows) == GATES, "one row per gate"
    assert len({r.slot for r in rows}) == 1
    after_second = await world.snapshot()
    assert after_second == after_first, "the second tick changed nothing"
    evidence = (await world.progress()).checkpoints["canary"].evidence
    assert {g: len(rs) for g, rs in evidence.items()} == dict.fromkeys(GATES, 1), "the engine was fed once"


async def test_a_slot_that_failed_once_takes_its_action_once(world):
    await world.canary_soaking()
    world.set_time("21:18")
    world.telemetry.set("auth-success", FAILING["auth-success"])

    await world.check()
    await world.check()

    assert len(await world.entries("gate_failed")) == 1
    assert world.actuator.percents("merchant-a") == [5.0, 0.0]


async def test_a_tick_with_no_gates_due_only_advances_the_run(world):
    await world.preflight_running()
    before = await world.snapshot()

    outcome = await world.check()

    assert outcome.ok
    assert world.telemetry.measured == []
    assert (await world.snapshot()).gate_rows == before.gate_rows == 0


async def test_an_advance_of_a_stopped_run_changes_nothing(world):
    await world.started()
    before = await world.snapshot()

    outcome = await advance(c.Advance(run=world.run), world.deps)

    assert outcome.ok
    assert "nothing to advance" in outcome.message
    assert await world.snapshot() == before


def test_the_fixture_values_pass_and_fail_as_intended():
    from packets.gates import GateSpec
    from tests.handler_fixtures import the_plan

    plan = the_plan()
    for gate in GATES:
        spec = GateSpec.parse(plan.gates[gate].pass_)
        assert spec.admits(PASSING[gate]) and not spec.admits(FAILING[gate])
        assert plan.gates[gate].on_fail == GATE_ACTIONS[gate]
    assert at("21:00") == plan.window.start


async def test_replicas_ticking_the_same_slot_at_once_record_and_act_on_it_once(any_world):
    world = any_world
    await world.canary_soaking()
    world.set_time("21:18")
    world.telemetry.set("auth-success", FAILING["auth-success"])

    outcomes = await asyncio.gather(*(world.check() for _ in range(8)))

    assert all(o.ok for o in outcomes)
    assert sum("already checked" not in o.message for o in outcomes) == 1
    assert sorted(r.gate for r in await world.gate_rows() if r.slot != 17) == GATES  # 17: read for the shift
    assert len(await world.entries("gate_failed")) == 1
    assert world.actuator.percents("merchant-a") == [5.0, 0.0]
