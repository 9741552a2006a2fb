"""Pushed alerts: a firing Alertmanager alert counts as a failing reading of its gate, at once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from handlers import commands as c
from handlers.alerts import alert_fired
from handlers.runs import ask_engine
from tests import handler_fixtures
from tests.handler_fixtures import CHANNEL, ENG1, GATE_ACTIONS, at

sqlite_uow = handler_fixtures.sqlite_uow
world = handler_fixtures.world

PLAN = "handler-test"


def alert(gate: str, *, plan: str = PLAN, value: float | None = None) -> c.AlertFired:
    return c.AlertFired(
        plan=plan,
        gate=gate,
        alert="SettlementParityDrift",
        fingerprint="c6eadffa33fcdf37",
        starts_at=at("21:18") - timedelta(seconds=30),
        value=value,
        summary="legacy vault unreachable",
    )


async def test_an_alert_for_a_gate_not_checked_yet_counts_as_nothing_and_changes_nothing(world):
    await world.preflight_running()  # no traffic has moved: no gate is checked
    before = await world.snapshot()

    outcome = await alert_fired(alert("lookup-latency"), world.deps)

    assert outcome.counted == 0
    [only] = outcome.runs
    assert only.ok and "not checked now" in only.message
    after = await world.snapshot()
    assert after.ledger_kinds == before.ledger_kinds
    assert after.progress == before.progress and after.gate_rows == before.gate_rows


async def test_an_alert_naming_another_plan_or_an_unknown_gate_counts_for_no_run(world):
    await world.canary_soaking()
    before = await world.snapshot()

    elsewhere = await alert_fired(alert("lookup-latency", plan="another-plan"), world.deps)
    unknown = await alert_fired(alert("no-such-gate"), world.deps)

    assert elsewhere.runs == () and unknown.counted == 0
    assert "no gate no-such-gate" in unknown.runs[0].message
    assert (await world.snapshot()).ledger_kinds == before.ledger_kinds


async def test_the_same_alert_delivered_twice_in_one_interval_is_counted_once(world):
    await world.canary_soaking()
    world.set_time("21:18")

    first = await alert_fired(alert("webhook-latency"), world.deps)
    again = await alert_fired(alert("webhook-latency"), world.deps)

    assert first.counted == 1 and again.counted == 0
    assert "already counted" in again.runs[0].message
    assert len(await world.entries("alert_received")) == 1
    assert len(await world.entries("gate_failed")) == 1


@pytest.mark.parametrize("gate", sorted(GATE_ACTIONS))
async def test_an_alert_on_a_gate_in_flight_takes_the_gates_action_at_once(world, gate):
    await world.canary_soaking()  # 21:17: shifted, soaking; the next scheduled check is 21:18
    world.clock.set(at("21:17") + timedelta(seconds=20))
    measured = len(world.telemetry.measured)

    outcome = await alert_fired(alert(gate), world.deps)

    assert outcome.counted == 1, outcome.runs
    assert len(world.telemetry.measured) == measured  # nothing was measured: the alert is the reading
    [received] = await world.entries("alert_received")
    assert received.actor == "alertmanager" and received.payload["checkpoint"] == "canary"
    [failed] = await world.entries("gate_failed")
    assert failed.payload["action"] == GATE_ACTIONS[gate] and failed.actor == f"gate:{gate}"
    [row] = [r for r in await world.gate_rows() if r.slot < 0]
    assert (row.gate, row.outcome, row.value) == (gate, "fail", None)
    message = (await world.outbox("gate_alert"))[-1].payload
    assert message["gate"] == gate and "SettlementParityDrift" in message["reason"]
    # The time the room reads is in the plan window's offset.
    assert "since 21:17:30 (-0500)" in message["reason"]
    expected = {
        "hold": "held",
        "rollback_cohort": "held",
        "freeze": "frozen",
        "global_rollback": "rolled_back",
        "pause": "paused",
    }[GATE_ACTIONS[gate]]
    assert (await world.progress()).state == expected


async def test_an_alert_on_a_watched_gate_while_the_run_waits_at_a_hold_acts_during_the_hold(world):
    await world.canary_passed()  # the canary is done, the widen hold is open, traffic is at 5 %
    assert (await world.progress()).state == "held"
    world.advance(0.5)

    outcome = await alert_fired(alert("auth-success", value=0.93), world.deps)

    assert outcome.counted == 1
    [received] = await world.entries("alert_received")
    assert received.payload["checkpoint"] == "watch"
    progress = await world.progress()
    assert progress.traffic == {"merchant-a": 0.0}  # auth-success rolls the cohort back
    assert world.actuator.percents("merchant-a") == [5.0, 0.0]
    [failed] = await world.entries("gate_failed")
    assert failed.payload["action"] == "rollback_cohort"
    [hold] = [h for h in progress.open_holds() if h.source == "gate"]
    assert "auth-success read 0.93" in hold.reason and "watched while traffic is live" in hold.reason


async def test_an_alert_while_frozen_is_recorded_and_told_but_moves_no_traffic(world):
    await world.canary_soaking()
    outcome = await ask_engine(
        c.EngineIntent(run=world.run, user=ENG1, move=c.Move.FREEZE, reason="vendor incident"), world.deps
    )
    assert outcome.ok, outcome.message
    world.advance(0.5)

    counted = await alert_fired(alert("error-rate"), world.deps)

    assert counted.counted == 1
    [failed] = await world.entries("gate_failed")
    assert failed.payload["taken"] is False
    progress = await world.progress()
    assert progress.state == "frozen" and progress.traffic == {"merchant-a": 5.0}
    assert world.actuator.percents("merchant-a") == [5.0]


async def test_the_hold_an_alert_opens_names_the_gate_and_the_alert_and_nothing_shifts_past_it(world):
    await world.canary_soaking()
    world.set_time("21:18")

    await alert_fired(alert("lookup-latency"), world.deps)  # hold
    for minute in range(19, 40):  # passing scheduled readings do not lift a hold
        world.set_time(f"21:{minute}")
        await world.check()

    progress = await world.progress()
    [hold] = [h for h in progress.open_holds() if h.source == "gate"]
    assert hold.checkpoint == "canary" and progress.state == "held"
    assert "lookup-latency fired an alert" in hold.reason and "Alertmanager" in hold.reason
    assert world.actuator.percents("merchant-a") == [5.0]
    assert (await world.outbox("gate_alert"))[-1].recipient == CHANNEL
