"""Use cases on the run as a whole: open, sign off, start, pause/resume, freeze/unfreeze, roll back.

Every refusal is checked the same way: an Outcome with ok=False and a reason, exactly one new
`refused` ledger entry, and nothing else changed (run row, packets, outbox, holds ...).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.clock import SimulatedClock
from bot.wiring import build_deps
from handlers import commands as c
from handlers.gate_checks import check_gates
from handlers.runs import ask_engine, open_run, sign_off
from packets.plan_load import load_plan
from store.db import make_engine
from store.uow import UnitOfWork
from tests import handler_fixtures
from tests.handler_fixtures import (
    CHANNEL,
    ENG1,
    REL1,
    RISK1,
    SEC1,
    STRANGER,
    assert_refused_and_unchanged,
    at,
    plan_text,
)

# pytest finds fixtures in the module namespace.
sqlite_uow = handler_fixtures.sqlite_uow
world = handler_fixtures.world

# -- open ---------------------------------------------------------------------------------------


async def test_a_good_plan_opens_a_run_with_packet_v1_authoritative_awaiting_sign_off(world):
    outcome = await world.open()

    assert outcome.ok
    assert outcome.current_version == 1
    assert outcome.data["revision"] == load_plan(plan_text()).revision
    snap = await world.snapshot()
    assert snap.state == "awaiting_signoff"
    assert snap.packets == ((1, "authoritative"),)
    assert snap.authoritative_version == 1
    assert snap.ledger_kinds == ("run_opened", "packet_authoritative")
    assert [r.kind for r in await world.outbox()] == ["plan_summary", "packet_posted"]
    assert world.changed == [world.run]
    assert await world.ledger_verifies()


async def test_a_plan_opened_in_the_wrong_channel_is_refused_and_nothing_is_stored(world):
    outcome = await open_run(
        c.OpenRun(plan_text=plan_text(), source="p.yaml", channel="C0ELSEWHERE", user=ENG1), world.deps
    )

    assert not outcome.ok
    assert CHANNEL in outcome.message
    async with world.uow.transaction(read_only=True) as tx:
        assert await tx.runs.active() == []
        assert await tx.ledger.chains() == []
    assert world.changed == []


async def test_a_malformed_plan_is_refused_naming_the_file_the_field_and_the_problem(world):
    broken = plan_text().replace(
        "owner: release-eng\n    observers: [payments-risk]",
        "owner: release-nobody\n    observers: [payments-risk]",
    )
    broken = broken.replace("after: [canary]", "after: [no-such-checkpoint]")

    outcome = await open_run(
        c.OpenRun(plan_text=broken, source="broken.yaml", channel=CHANNEL, user=ENG1), world.deps
    )

    assert not outcome.ok
    assert outcome.message.startswith("The plan is refused:")
    lines = outcome.message.splitlines()[1:]
    assert len(lines) >= 2
    assert all(line.startswith("broken.yaml") for line in lines)
    assert any("release-nobody" in line for line in lines)
    assert any("no-such-checkpoint" in line for line in lines)
    async with world.uow.transaction(read_only=True) as tx:
        assert await tx.ledger.chains() == []


async def test_yaml_that_does_not_parse_is_refused_with_its_line(world):
    outcome = await open_run(
        c.OpenRun(plan_text="plan: [unclosed\n", source="bad.yaml", channel=CHANNEL, user=ENG1), world.deps
    )

    assert not outcome.ok
    assert "bad.yaml" in outcome.message


async def test_a_second_run_in_the_same_channel_is_refused_and_ledgered_on_the_active_run(world):
    await world.open()
    before = await world.snapshot()
    world.advance(1)

    outcome = await open_run(
        c.OpenRun(plan_text=plan_text(), source="p.yaml", channel=CHANNEL, user=ENG1), world.deps
    )

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=["already active", world.run])
    async with world.uow.transaction(read_only=True) as tx:
        assert [r.run_id for r in await tx.runs.active()] == [world.run]


async def test_two_opens_racing_on_two_replicas_make_one_run_and_a_clear_answer(database_url: str) -> None:
    # Two replicas: two engines on one database, their clocks a second apart (two run ids), so
    # only the database's one-active-run-per-channel index can stop the second.
    replicas = [UnitOfWork(make_engine(database_url)) for _ in range(2)]
    clocks = [
        SimulatedClock(handler_fixtures.at("20:55")),
        SimulatedClock(handler_fixtures.at("20:55") + timedelta(seconds=1)),
    ]
    try:
        outcomes = await asyncio.gather(
            *(
                open_run(
                    c.OpenRun(plan_text=plan_text(), source="p.yaml", channel=CHANNEL, user=ENG1),
                    build_deps(uow=uow, clock=clock),
                )
                for uow, clock in zip(replicas, clocks, strict=True)
            )
        )
        async with replicas[0].transaction(read_only=True) as tx:
            active = await tx.runs.active()
    finally:
        for uow in replicas:
            await uow.dispose()

    assert len(active) == 1
    opened = [o for o in outcomes if o.ok]
    refused = [o for o in outcomes if not o.ok]
    assert len(opened) == 1 and opened[0].run == active[0].run_id
    assert len(refused) == 1
    assert any(words in refused[0].message for words in ("a moment ago", "already active")), refused[0]


# -- sign off -----------------------------------------------------------------------------------


async def test_signing_off_the_right_revision_records_it_and_the_last_one_makes_the_run_ready(world):
    await world.open()

    first = await sign_off(c.SignOff(run=world.run, user=REL1, revision=world.revision), world.deps)
    assert first.ok
    assert "still waiting for payments-risk" in first.message
    assert (await world.snapshot()).state == "awaiting_signoff"

    second = await sign_off(c.SignOff(run=world.run, user=RISK1, revision=world.revision), world.deps)
    assert second.ok
    snap = await world.snapshot()
    assert snap.state == "ready"
    assert snap.signoffs == 2
    assert [e.actor for e in await world.entries("signoff")] == [REL1, RISK1]
    assert len(await world.entries("run_ready")) == 1
    recorded = await world.outbox("signoff_recorded")
    assert [r.payload["remaining"] for r in recorded] == [["payments-risk"], []]


async def test_a_sign_off_of_another_revision_is_refused(world):
    await world.open()
    before = await world.snapshot()

    outcome = await sign_off(c.SignOff(run=world.run, user=REL1, revision="f" * 64), world.deps)

    assert_refused_and_unchanged(
        outcome,
        before,
        await world.snapshot(),
        says=["ffffffffffff", world.revision[:12], "inherits no sign-off"],
    )


async def test_someone_without_a_sign_off_role_is_refused_naming_who_signs(world):
    await world.open()
    before = await world.snapshot()

    outcome = await sign_off(c.SignOff(run=world.run, user=SEC1, revision=world.revision), world.deps)

    assert_refused_and_unchanged(
        outcome,
        before,
        await world.snapshot(),
        says=[SEC1, "release-authority: U0REL1", "payments-risk: U0RISK1"],
    )


async def test_signing_off_as_a_role_one_does_not_act_for_is_refused(world):
    await world.open()
    before = await world.snapshot()

    outcome = await sign_off(
        c.SignOff(run=world.run, user=REL1, revision=world.revision, role="payments-risk"), world.deps
    )

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=[RISK1])


async def test_signing_off_twice_is_refused_the_second_time(world):
    await world.open()
    assert (await sign_off(c.SignOff(run=world.run, user=REL1, revision=world.revision), world.deps)).ok
    before = await world.snapshot()

    again = await sign_off(c.SignOff(run=world.run, user=REL1, revision=world.revision), world.deps)

    assert_refused_and_unchanged(again, before, await world.snapshot(), says=["already signed off"])


# -- start --------------------------------------------------------------------------------------


async def test_starting_before_sign_off_is_refused_naming_who_is_missing(world):
    await world.open()
    assert (await sign_off(c.SignOff(run=world.run, user=REL1, revision=world.revision), world.deps)).ok
    before = await world.snapshot()

    outcome = await ask_engine(c.EngineIntent(run=world.run, user=ENG1, move=c.Move.START), world.deps)

    assert_refused_and_unchanged(
        outcome,
        before,
        await world.snapshot(),
        says=["waiting for sign-off", "payments-risk (acting: U0RISK1)"],
    )
    assert "release-authority (acting" not in outcome.message
    assert world.actuator.shifts == []


async def test_starting_after_the_window_has_closed_is_refused_with_the_closing_time(world):
    await world.signed()
    world.clock.set(at("21:00") + timedelta(hours=4, minutes=10))  # 01:10, the window closed at 01:00
    before = await world.snapshot()

    outcome = await ask_engine(c.EngineIntent(run=world.run, user=ENG1, move=c.Move.START), world.deps)

    assert_refused_and_unchanged(
        outcome,
        before,
        await world.snapshot(),
        says=["The cutover window closed at 01:00 on 2026-11-25", "cannot start after its window"],
    )
    assert world.actuator.shifts == []


async def test_starting_at_the_last_minute_of_the_window_is_allowed(world):
    await world.signed()
    world.clock.set(at("21:00") + timedelta(hours=3, minutes=59))

    outcome = await ask_engine(c.EngineIntent(run=world.run, user=ENG1, move=c.Move.START), world.deps)

    assert outcome.ok, outcome.message


async def test_starting_after_sign_off_walks_to_the_protected_preflight_and_holds_it(world):
    await world.signed()
    world.advance(1)

    outcome = await ask_engine(c.EngineIntent(run=world.run, user=ENG1, move=c.Move.START), world.deps)

    assert outcome.ok
    progress = await world.progress()
    assert progress.state == "held"
    assert progress.started_by == ENG1
    assert progress.checkpoints["preflight"].state == "held"
    [hold] = progress.open_holds()
    assert hold.checkpoint == "preflight"
    assert hold.release_by == ("release-authority",)
    assert [(h.hold_id, h.state) for h in await world.hold_rows()] == [(hold.id, "open")]
    assert "run_started" in (await world.snapshot()).ledger_kinds
    assert world.actuator.shifts == []


async def test_someone_outside_start_and_rollback_may_not_start(world):
    await world.signed()
    before = await world.snapshot()

    outcome = await ask_engine(c.EngineIntent(run=world.run, user=RISK1, move=c.Move.START), world.deps)

    assert_refused_and_unchanged(
        outcome, before, await world.snapshot(), says=[RISK1, "release-eng (acting: U0ENG1)"]
    )


async def test_a_use_case_on_a_run_that_does_not_exist_is_refused(world):
    outcome = await ask_engine(c.EngineIntent(run="no-such-run", user=ENG1, move=c.Move.START), world.deps)

    assert not outcome.ok
    assert "no-such-run" in outcome.message


# -- pause, resume, freeze, unfreeze --------------------------------------------------------------


async def test_pause_and_resume_by_a_start_and_rollback_role(world):
    await world.preflight_running()

    paused = await ask_engine(
        c.EngineIntent(run=world.run, user=ENG1, reason="checking a dashboard", move=c.Move.PAUSE), world.deps
    )
    assert paused.ok and paused.data["state"] == "paused"
    assert (await world.progress()).paused.by == ENG1

    resumed = await ask_engine(c.EngineIntent(run=world.run, user=REL1, move=c.Move.RESUME), world.deps)
    assert resumed.ok and resumed.data["state"] == "running"
    assert (await world.progress()).paused is None
    assert {"run_paused", "run_resumed"} <= set((await world.snapshot()).ledger_kinds)


async def test_freeze_and_unfreeze_by_a_start_and_rollback_role(world):
    await world.canary_soaking()

    frozen = await ask_engine(
        c.EngineIntent(run=world.run, user=REL1, reason="fallback looks odd", move=c.Move.FREEZE), world.deps
    )
    assert frozen.ok and frozen.data["state"] == "frozen"

    thawed = await ask_engine(c.EngineIntent(run=world.run, user=ENG1, move=c.Move.UNFREEZE), world.deps)
    assert thawed.ok and thawed.data["state"] == "running"
    assert world.actuator.percents("merchant-a") == [5.0]


async def test_someone_without_the_role_may_not_pause(world):
    await world.preflight_running()
    before = await world.snapshot()

    outcome = await ask_engine(c.EngineIntent(run=world.run, user=SEC1, move=c.Move.PAUSE), world.deps)

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=[SEC1, "release-authority"])


async def test_someone_without_the_role_may_not_resume(world):
    await world.preflight_running()
    assert (await ask_engine(c.EngineIntent(run=world.run, user=ENG1, move=c.Move.PAUSE), world.deps)).ok
    before = await world.snapshot()

    outcome = await ask_engine(c.EngineIntent(run=world.run, user=RISK1, move=c.Move.RESUME), world.deps)

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=[RISK1])


async def test_someone_without_the_role_may_not_freeze(world):
    await world.preflight_running()
    before = await world.snapshot()

    outcome = await ask_engine(c.EngineIntent(run=world.run, user=STRANGER, move=c.Move.FREEZE), world.deps)

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=[STRANGER])


async def test_someone_without_the_role_may_not_unfreeze(world):
    await world.preflight_running()
    assert (await ask_engine(c.EngineIntent(run=world.run, user=REL1, move=c.Move.FREEZE), world.deps)).ok
    before = await world.snapshot()

    outcome = await ask_engine(c.EngineIntent(run=world.run, user=SEC1, move=c.Move.UNFREEZE), world.deps)

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=[SEC1])


async def test_resuming_a_run_that_is_not_paused_is_refused(world):
    await world.preflight_running()
    before = await world.snapshot()

    outcome = await ask_engine(c.EngineIntent(run=world.run, user=ENG1, move=c.Move.RESUME), world.deps)

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=["not paused"])


# -- roll back ----------------------------------------------------------------------------------


async def test_rolling_back_the_cohort_puts_its_traffic_back_and_holds_the_checkpoint(world):
    await world.canary_soaking()
    world.advance(2)

    outcome = await ask_engine(
        c.Rollback(run=world.run, user=ENG1, scope="cohort", reason="auth dips"), world.deps
    )

    assert outcome.ok, outcome.message
    assert world.actuator.percents("merchant-a") == [5.0, 0.0]
    progress = await world.progress()
    assert progress.traffic == {"merchant-a": 0.0}
    assert progress.state == "held"
    assert progress.checkpoints["canary"].state == "held"
    [hold] = progress.open_holds()
    assert hold.checkpoint == "canary" and hold.source == "manual"
    kinds = (await world.snapshot()).ledger_kinds
    assert "rollback_cohort" in kinds and "traffic_confirmed" in kinds
    shifts = await world.outbox("traffic_shift")
    assert [r.payload["percent"] for r in shifts] == [5.0, 0.0]


async def test_rolling_back_everything_ends_the_run_rolled_back_at_zero_traffic(world):
    await world.canary_soaking()
    world.advance(2)

    outcome = await ask_engine(
        c.Rollback(run=world.run, user=REL1, scope="all", reason="abandon"), world.deps
    )

    assert outcome.ok, outcome.message
    # The reply is written before the control plane answers (no HTTP call inside the use case's
    # transaction); the confirmation, fed back right after, ends the run.
    assert outcome.data["state"] == "rolling_back"
    progress = await world.progress()
    assert progress.state == "rolled_back"
    assert progress.traffic == {"merchant-a": 0.0}
    assert progress.open_holds() == ()
    assert world.actuator.percents("merchant-a") == [5.0, 0.0]
    async with world.uow.transaction(read_only=True) as tx:
        assert await tx.runs.active() == []


async def test_rolling_back_the_cohort_with_no_cohort_in_flight_is_refused(world):
    await world.preflight_running()
    before = await world.snapshot()

    outcome = await ask_engine(c.Rollback(run=world.run, user=ENG1, scope="cohort", reason="x"), world.deps)

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=["no cohort is in flight"])


async def test_someone_without_the_role_may_not_roll_back(world):
    await world.canary_soaking()
    before = await world.snapshot()

    outcome = await ask_engine(c.Rollback(run=world.run, user=RISK1, scope="all", reason="x"), world.deps)

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=[RISK1])
    assert world.actuator.percents("merchant-a") == [5.0]


async def test_a_control_plane_that_refuses_the_canary_shift_holds_the_checkpoint(world):
    await world.preflight_running()
    world.actuator.refuse("503 from the traffic API")
    world.set_time("21:17")

    from handlers.resequence import report_done

    outcome = await report_done(c.ReportDone(run=world.run, user=ENG1, checkpoint="preflight"), world.deps)
    checked = await world.check()  # read for the canary's shift (check before moving)

    assert outcome.ok and checked.ok, (outcome.message, checked.message)
    progress = await world.progress()
    assert progress.traffic == {"merchant-a": 0.0}
    assert progress.state == "held"
    assert any(h.source == "actuation" for h in progress.open_holds())
    assert "actuation_failed" in (await world.snapshot()).ledger_kinds


async def test_a_failure_after_the_control_plane_moved_traffic_is_written_down_before_it_goes_up(
    world, monkeypatch
):
    from dataclasses import replace

    import pytest

    from handlers import shifts
    from handlers.resequence import report_done
    from store.outbox import Outbox

    await world.preflight_running()
    world.set_time("21:17")
    queued_only = replace(world.deps, drain_shifts=False)
    done = await report_done(c.ReportDone(run=world.run, user=ENG1, checkpoint="preflight"), queued_only)
    assert done.ok, done.message
    checked = await check_gates(c.CheckGates(run=world.run), queued_only)  # read for the shift
    assert checked.ok, checked.message
    real_enqueue = Outbox.enqueue

    async def broken_enqueue(self, **kwargs):  # the database fails right after the shift
        if kwargs.get("kind") == "traffic_shift":
            raise RuntimeError("disk full")
        return await real_enqueue(self, **kwargs)

    monkeypatch.setattr(Outbox, "enqueue", broken_enqueue)
    before = await world.progress()
    with pytest.raises(RuntimeError):
        await shifts.drain(world.deps)

    assert (await world.progress()) == before  # the answer's state change rolled back
    (entry,) = await world.entries("failed_after_shift")
    assert entry.payload["shifts"][0]["cohort"] == world.actuator.shifts[-1].cohort
    assert entry.payload["error"] == "RuntimeError"

    # The answer was kept: once the database works again it is fed, and the shift is not resent.
    monkeypatch.undo()
    await shifts.drain(world.deps)
    assert world.actuator.percents("merchant-a") == [5.0]
    assert (await world.progress()).traffic_history["merchant-a"][-1].confirmed is True


async def test_the_actuator_is_only_called_with_no_transaction_open(world):
    from contextlib import asynccontextmanager
    from dataclasses import replace

    from handlers.ports import ActuationResult
    from handlers.resequence import report_done
    from store.uow import UnitOfWork

    class WatchedUnitOfWork(UnitOfWork):
        """Counts the transactions open right now (any of them could hold the run's lock)."""

        open = 0

        @asynccontextmanager
        async def transaction(self, run_id=None, *, read_only=False):
            self.open += 1
            try:
                async with super().transaction(run_id, read_only=read_only) as tx:
                    yield tx
            finally:
                self.open -= 1

    watched = WatchedUnitOfWork(world.uow.engine)
    seen: list[tuple[float, int]] = []

    class WatchingActuator:
        async def shift(self, shift):
            seen.append((shift.percent, watched.open))
            return ActuationResult(ok=True, detail="recorded")

    actuator = WatchingActuator()
    deps = replace(world.deps, uow=watched, actuator_for=lambda _plan: actuator)
    await world.preflight_running()
    world.set_time("21:17")
    done = await report_done(c.ReportDone(run=world.run, user=ENG1, checkpoint="preflight"), deps)
    await check_gates(c.CheckGates(run=world.run), deps)  # read for the canary's shift
    world.advance(2)
    back = await ask_engine(c.Rollback(run=world.run, user=REL1, scope="all", reason="abandon"), deps)

    assert done.ok and back.ok, (done.message, back.message)
    assert seen == [(5.0, 0), (0.0, 0)]
    assert (await world.progress()).state == "rolled_back"


async def test_a_run_with_no_traffic_on_the_new_path_can_be_aborted_and_the_channel_freed(world):
    from handlers.runs import ask_engine, open_run
    from tests.handler_fixtures import CHANNEL, plan_text

    await world.started()
    outcome = await ask_engine(
        c.EngineIntent(run=world.run, user=ENG1, reason="change window cancelled", move=c.Move.ABORT),
        world.deps,
    )

    assert outcome.ok, outcome.message
    assert (await world.progress()).state == "aborted"
    world.advance(1)
    again = await open_run(
        c.OpenRun(plan_text=plan_text(), source="p.yaml", channel=CHANNEL, user=ENG1), world.deps
    )
    assert again.ok, again.message
