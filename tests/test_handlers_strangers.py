"""Someone in no role of the plan is refused without queueing behind the run, and cannot flood
the ledger: one `refused` entry per person and minute, every attempt answered and logged."""

from __future__ import annotations

import asyncio

from handlers import commands as c
from handlers.holds import open_hold, release_hold
from tests import handler_fixtures
from tests.handler_fixtures import ENG2, STRANGER

world = handler_fixtures.world
any_world = handler_fixtures.any_world
sqlite_uow = handler_fixtures.sqlite_uow


async def _stranger_holds(world, reason: str = "flood") -> object:
    return await open_hold(c.OpenHold(run=world.run, user=STRANGER, reason=reason), world.deps)


async def test_fifty_refusals_from_someone_in_no_role_leave_one_ledger_entry_a_minute(any_world):
    world = any_world
    await world.canary_soaking()
    before = len(await world.entries("refused"))

    outcomes = [await _stranger_holds(world) for _ in range(50)]

    assert all(not o.ok and "does not act for any role in this plan" in o.message for o in outcomes)
    assert len(await world.entries("refused")) == before + 1
    world.advance(1)
    assert not (await _stranger_holds(world)).ok
    refused = (await world.entries("refused"))[before:]
    assert [e.actor for e in refused] == [STRANGER, STRANGER]
    assert refused[-1].payload["action"] == "open hold"


async def test_a_strangers_refusal_is_answered_while_the_run_is_locked(world):
    await world.canary_soaking()
    assert not (await _stranger_holds(world)).ok  # the minute's one ledger entry
    locked, done = asyncio.Event(), asyncio.Event()

    async def hold_the_run() -> None:
        async with world.deps.uow.transaction(run_id=world.run):
            locked.set()
            await done.wait()

    holder = asyncio.create_task(hold_the_run())
    await locked.wait()
    try:
        # A guard against a hang, not a speed claim: the refusal must not wait for the lock.
        outcome = await asyncio.wait_for(_stranger_holds(world), timeout=30)
    finally:
        done.set()
        await holder
    assert not outcome.ok and STRANGER in outcome.message


async def test_a_delegate_of_the_plan_who_is_not_acting_is_refused_by_the_use_case_itself(world):
    await world.canary_soaking()

    outcome = await release_hold(c.ReleaseHold(run=world.run, user=ENG2, hold="canary"), world.deps)

    assert not outcome.ok and "does not act for any role" not in outcome.message, outcome.message
