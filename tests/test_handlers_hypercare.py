"""Hyper-care through the use cases: checks on the widening cadence, failures that act, the end.

The plan (tests/hypercare_fixtures.py) ends on merchant-a at 100 % at 21:36 and has four hours of
hyper-care on every gate: every 5 minutes, then every 15, then every hour. The scheduler is played
by hand here: each test ticks the run at `next_interval`, as bot/scheduler.py does.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from handlers import commands as c
from handlers.evidence import build_evidence, to_markdown
from handlers.gate_checks import advance, next_interval
from handlers.holds import release_hold
from handlers.status import run_status
from packets.engine.progress import RunState
from tests import handler_fixtures, hypercare_fixtures
from tests.handler_fixtures import CHANNEL, ENG1, FAILING, GATE_ACTIONS, PASSING, REL1, RISK1
from tests.hypercare_fixtures import HYPERCARE_SINCE, HYPERCARE_UNTIL, hypercare_plan

# pytest finds fixtures in the module namespace.
sqlite_uow = handler_fixtures.sqlite_uow
hypercare_world = hypercare_fixtures.hypercare_world

GATES = sorted(GATE_ACTIONS)
# The acting owners of the traffic checkpoints (release-eng, payments-risk) and of start_and_rollback.
OWNERS = sorted([ENG1, RISK1, REL1])


async def tick_at_cadence(world, *, until: str = "completed", limit: int = 200) -> list[timedelta]:
    """Tick the run at the interval `next_interval` gives, as the scheduler does; the gaps taken."""
    plan = hypercare_plan()
    gaps: list[timedelta] = []
    for _ in range(limit):
        progress = await world.progress()
        if progress.state == until:
            return gaps
        interval = next_interval(plan, progress, world.clock.now())
        assert interval is not None, progress.state
        world.clock.advance(interval)
        gaps.append(interval)
        outcome = await world.check()
        assert outcome.ok, outcome.message
    raise AssertionError(f"the run never became {until}")


async def test_after_the_last_checkpoint_the_run_is_in_hyper_care_not_completed(hypercare_world):
    world = hypercare_world
    await world.in_hypercare()

    progress = await world.progress()
    assert progress.ended_at is None
    assert progress.traffic == {"merchant-a": 100.0}
    [started] = await world.entries("hypercare_started")
    assert started.payload["until"] == HYPERCARE_UNTIL.isoformat()
    assert started.payload["gates"] == list(hypercare_plan().gates)
    assert [r.payload["state"] for r in await world.outbox("run_state")][-1] == "hypercare"
    assert await world.entries("run_completed") == []
    status = await run_status(world.run, world.deps)
    assert "is *in hyper-care*" in status.message and "checks every 5m" in status.message


async def test_hyper_care_gates_are_checked_on_the_widening_cadence_and_the_run_completes_after_the_last_step(
    hypercare_world,
):
    world = hypercare_world
    await world.in_hypercare()

    gaps = await tick_at_cadence(world)

    minutes = [int(g.total_seconds() // 60) for g in gaps]
    assert minutes == [5] * 12 + [15] * 4 + [60] * 2
    progress = await world.progress()
    assert progress.state == "completed" and progress.ended_at == HYPERCARE_UNTIL
    rows = [r for r in await world.gate_rows() if r.checkpoint == "hypercare"]
    # Checks at +5m ... +55m, +60m ... +105m, +120m and +180m; at +240m hyper-care is over.
    assert len(rows) == (11 + 4 + 2) * len(GATES)
    assert sorted({r.gate for r in rows}) == GATES
    slots = sorted({r.slot for r in rows})
    assert len(slots) == 11 + 4 + 2 and slots == list(range(1, 18))
    kinds = [e.kind for e in await world.entries()]
    assert kinds[-2:] == ["hypercare_ended", "run_completed"]
    assert next_interval(hypercare_plan(), progress, world.clock.now()) is None
    assert world.actuator.percents("merchant-a") == [5.0, 100.0]
    evidence = await build_evidence(world.run, world.deps)
    assert evidence is not None and evidence["final_state"] == "completed"
    assert evidence["hypercare"]["checks"] == len(rows) and evidence["hypercare"]["failures"] == []
    assert "## Hyper-care" in to_markdown(evidence)


@pytest.mark.parametrize("gate", GATES)
async def test_a_gate_failing_during_hyper_care_takes_its_action_and_tells_the_acting_owners(
    hypercare_world, gate
):
    world = hypercare_world
    await world.in_hypercare()
    world.clock.set(HYPERCARE_SINCE + timedelta(minutes=5))
    world.telemetry.set(gate, FAILING[gate])

    outcome = await world.check()

    assert outcome.ok, outcome.message
    assert f"failing: {gate}" in outcome.message
    action = GATE_ACTIONS[gate]
    [failed] = await world.entries("gate_failed")
    assert failed.actor == f"gate:{gate}"
    assert (failed.payload["checkpoint"], failed.payload["action"]) == ("hypercare", action)
    alerts = await world.outbox("gate_alert")
    assert sorted(a.recipient for a in alerts) == sorted([CHANNEL, *OWNERS])
    assert all((a.payload["checkpoint"], a.payload["action"]) == ("hypercare", action) for a in alerts)
    progress = await world.progress()
    holds = [(h.checkpoint, h.source) for h in progress.open_holds()]
    if action == "hold":
        assert progress.state == "held" and holds == [("hypercare", "gate")]
        assert world.actuator.percents("merchant-a") == [5.0, 100.0]
    elif action == "rollback_cohort":
        # The last traffic checkpoint's cohort goes back to its percent before it, then a hold.
        assert progress.state == "held" and holds == [("hypercare", "gate")]
        assert world.actuator.percents("merchant-a") == [5.0, 100.0, 5.0]
        assert progress.checkpoints["full"].state == "done"
    elif action == "global_rollback":
        assert progress.state == "rolled_back" and holds == []
        assert world.actuator.percents("merchant-a") == [5.0, 100.0, 0.0]
        assert next_interval(hypercare_plan(), progress, world.clock.now()) is None
    elif action == "freeze":
        assert progress.state == "frozen" and progress.frozen is not None
        assert world.actuator.percents("merchant-a") == [5.0, 100.0]
    else:
        assert action == "pause"
        assert progress.state == "paused" and progress.paused is not None
        assert progress.paused.by == f"gate:{gate}"


async def test_a_hyper_care_hold_is_released_back_into_hyper_care_whose_cadence_restarted_at_the_last_failure(
    hypercare_world,
):
    world = hypercare_world
    await world.in_hypercare()
    world.clock.set(HYPERCARE_SINCE + timedelta(minutes=5))
    world.telemetry.set("lookup-latency", FAILING["lookup-latency"])
    await world.check()
    # Held, the checks go on at the cadence; the still-failing gate is neither re-held nor re-alerted.
    for _ in range(3):
        world.clock.advance(timedelta(minutes=5))
        assert (await world.check()).ok
    assert len(await world.entries("gate_failed")) == 4
    assert len((await world.progress()).open_holds()) == 1
    assert len(await world.outbox("gate_alert")) == 1 + len(OWNERS)

    world.telemetry.set("lookup-latency", PASSING["lookup-latency"])
    released = await release_hold(c.ReleaseHold(run=world.run, user=REL1, hold="hypercare"), world.deps)

    assert released.ok, released.message
    assert (await world.progress()).state == "hypercare"
    await tick_at_cadence(world)
    progress = await world.progress()
    # Each failing check (minutes 5 to 20, in the first step) started the cadence again: without
    # `extend_on_breach`, hyper-care runs its whole course from the last failure.
    assert len(await world.entries("hypercare_extended")) == 4
    assert progress.state == "completed" and progress.ended_at == HYPERCARE_UNTIL + timedelta(minutes=20)
    assert world.actuator.percents("merchant-a") == [5.0, 100.0]


async def test_a_run_held_when_hyper_care_runs_out_completes_at_the_first_tick_after_its_release(
    hypercare_world,
):
    world = hypercare_world
    await world.in_hypercare()
    world.clock.set(HYPERCARE_SINCE + timedelta(minutes=5))
    world.telemetry.set("lookup-latency", FAILING["lookup-latency"])
    await world.check()
    world.clock.set(HYPERCARE_UNTIL + timedelta(minutes=30))
    measured = len(world.telemetry.measured)
    assert (await world.check()).ok
    assert len(world.telemetry.measured) == measured, "nothing is measured once hyper-care is over"
    assert (await world.progress()).state == "held"

    await release_hold(c.ReleaseHold(run=world.run, user=ENG1, hold="hypercare"), world.deps)
    progress = await world.progress()
    assert progress.state == "hypercare"
    assert next_interval(hypercare_plan(), progress, world.clock.now()) == timedelta(minutes=1)
    world.clock.advance(timedelta(minutes=1))
    outcome = await advance(c.Advance(run=world.run), world.deps)

    assert outcome.ok, outcome.message
    assert (await world.progress()).state == "completed"


async def test_next_interval_is_the_gate_interval_during_the_stages_then_the_cadence_step_in_force(
    hypercare_world,
):
    world = hypercare_world
    plan = hypercare_plan()
    await world.started()
    assert next_interval(plan, await world.progress(), world.clock.now()) == timedelta(minutes=1)
    progress = replace(await world.progress(), state=RunState.HYPERCARE, hypercare_since=HYPERCARE_SINCE)
    # The cadence step in force; once hyper-care ran out, the gate interval again (the next tick ends it).
    for offset, expected in [(0, 5), (59, 5), (60, 15), (119, 15), (120, 60), (239, 60), (240, 1)]:
        now = HYPERCARE_SINCE + timedelta(minutes=offset)
        assert next_interval(plan, progress, now) == timedelta(minutes=expected), offset
    for state in (RunState.PAUSED, RunState.HELD, RunState.FROZEN):
        assert next_interval(plan, replace(progress, state=state), HYPERCARE_SINCE) == timedelta(minutes=5)
    for state in (RunState.COMPLETED, RunState.ROLLED_BACK, RunState.ABORTED):
        assert next_interval(plan, replace(progress, state=state), HYPERCARE_SINCE) is None


async def test_a_hyper_care_slot_checked_twice_is_recorded_and_acted_on_once(hypercare_world):
    world = hypercare_world
    await world.in_hypercare()
    world.clock.set(HYPERCARE_SINCE + timedelta(minutes=7))
    world.telemetry.set("auth-success", FAILING["auth-success"])

    first = await world.check()
    world.clock.set(HYPERCARE_SINCE + timedelta(minutes=9))  # the same 5-minute slot
    second = await world.check()

    assert first.ok and second.ok
    assert "already checked" in second.message
    assert len(await world.entries("gate_failed")) == 1
    assert world.actuator.percents("merchant-a") == [5.0, 100.0, 5.0]
