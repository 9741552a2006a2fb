"""Opening and releasing holds: who may, any/all modes, stale buttons, and fifty clicks at once."""

from __future__ import annotations

import asyncio
import re

from handlers import commands as c
from handlers.holds import open_hold, release_hold, withdraw_release
from tests import handler_fixtures
from tests.handler_fixtures import (
    CHANNEL,
    ENG1,
    ENG2,
    REL1,
    RISK1,
    SEC1,
    STRANGER,
    assert_refused_and_unchanged,
)

# pytest finds fixtures in the module namespace.
any_world = handler_fixtures.any_world
sqlite_uow = handler_fixtures.sqlite_uow
world = handler_fixtures.world


async def _release(world, user: str, hold: str, version: int | None = None):
    return await release_hold(c.ReleaseHold(run=world.run, user=user, hold=hold, version=version), world.deps)


# -- open ---------------------------------------------------------------------------------------


async def test_anyone_acting_for_a_role_may_open_a_hold_and_the_room_is_told(world):
    await world.canary_soaking()

    outcome = await open_hold(c.OpenHold(run=world.run, user=SEC1, reason="HSM alarms firing"), world.deps)

    assert outcome.ok, outcome.message
    progress = await world.progress()
    assert progress.state == "held"
    hold = progress.holds[outcome.data["hold"]]
    assert (hold.checkpoint, hold.source, hold.opened_by) == ("canary", "manual", SEC1)
    assert hold.release_by == ("release-authority", "release-eng")
    opened = (await world.outbox("hold_opened"))[-1]
    assert opened.recipient == CHANNEL and opened.payload["hold"]["id"] == hold.id
    assert [(h.hold_id, h.state) for h in await world.hold_rows()][-1] == (hold.id, "open")


async def test_someone_in_no_role_may_not_open_a_hold(world):
    await world.canary_soaking()
    before = await world.snapshot()

    outcome = await open_hold(c.OpenHold(run=world.run, user=STRANGER, reason="just because"), world.deps)

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=[STRANGER])


async def test_a_delegate_who_is_not_acting_may_not_open_a_hold(world):
    await world.canary_soaking()
    before = await world.snapshot()

    outcome = await open_hold(c.OpenHold(run=world.run, user=ENG2, reason="x"), world.deps)

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=[ENG2])


async def test_a_hold_without_a_reason_is_refused(world):
    await world.canary_soaking()
    before = await world.snapshot()

    outcome = await open_hold(c.OpenHold(run=world.run, user=ENG1, reason="   "), world.deps)

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=["reason"])


# -- release ------------------------------------------------------------------------------------


async def test_a_mode_any_hold_is_released_by_one_release_role_and_the_run_moves_on(world):
    await world.started()

    outcome = await _release(world, REL1, "preflight")

    assert outcome.ok, outcome.message
    assert outcome.data["role"] == "release-authority"
    progress = await world.progress()
    assert progress.state == "running"
    assert progress.checkpoints["preflight"].state == "active"
    [row] = await world.hold_rows()
    assert (row.state, row.released_by, row.released_as) == ("released", REL1, "release-authority")
    released = (await world.outbox("hold_released"))[-1]
    assert released.payload["by"] == REL1 and released.payload["remaining"] == []


async def test_a_mode_all_hold_needs_every_release_role_from_different_people(world):
    await world.canary_passed()
    assert (await _release(world, REL1, "widen")).ok
    hold = next(h for h in (await world.progress()).open_holds() if h.checkpoint == "retire")
    assert hold.mode == "all"

    first = await _release(world, RISK1, hold.id)

    assert first.ok, first.message
    assert "still needs release-authority" in first.message
    progress = await world.progress()
    assert progress.holds[hold.id].is_open and progress.state == "held"
    recorded = (await world.outbox("hold_released"))[-1]
    assert recorded.payload["remaining"] == ["release-authority"]
    before = await world.snapshot()

    twice = await _release(world, RISK1, hold.id)

    assert_refused_and_unchanged(
        twice, before, await world.snapshot(), says=["already released", "different person"]
    )

    second = await _release(world, REL1, hold.id)

    assert second.ok, second.message
    progress = await world.progress()
    assert progress.state == "completed"
    assert [(r.user, r.role) for r in progress.holds[hold.id].releases] == [
        (RISK1, "payments-risk"),
        (REL1, "release-authority"),
    ]
    rows = {h.hold_id: h for h in await world.hold_rows()}
    assert rows[hold.id].state == "released"
    assert set(rows[hold.id].released_by.split(",")) == {RISK1, REL1}


async def test_a_person_takes_back_their_release_of_a_two_person_hold_by_checkpoint_and_the_room_hears(world):
    await world.canary_passed()
    assert (await _release(world, REL1, "widen")).ok
    assert (await _release(world, RISK1, "retire")).ok

    outcome = await withdraw_release(c.WithdrawRelease(run=world.run, user=RISK1, hold="retire"), world.deps)

    assert outcome.ok, outcome.message
    assert "still needs release-authority, payments-risk" in outcome.message
    progress = await world.progress()
    hold = progress.holds[outcome.data["hold"]]
    assert hold.checkpoint == "retire" and hold.is_open and hold.releases == ()
    (entry,) = await world.entries("hold_release_withdrawn")
    assert (entry.actor, entry.payload["role"]) == (RISK1, "payments-risk")
    told = (await world.outbox("run_state"))[-1]
    assert told.payload["state"] == "release taken back"
    # Taking it back twice is refused and changes nothing.
    before = await world.snapshot()
    again = await withdraw_release(c.WithdrawRelease(run=world.run, user=RISK1, hold=hold.id), world.deps)
    assert_refused_and_unchanged(again, before, await world.snapshot(), says=["no release of yours"])


async def test_release_by_checkpoint_picks_the_open_hold_the_caller_may_release(world):
    await world.canary_passed()
    assert (await _release(world, REL1, "widen")).ok
    plan_hold = next(h for h in (await world.progress()).open_holds() if h.checkpoint == "retire")
    # A newer hold on the same checkpoint that payments-risk may not release.
    opened = await open_hold(c.OpenHold(run=world.run, user=ENG1, reason="DB replica lag"), world.deps)
    assert opened.ok, opened.message
    manual = (await world.progress()).holds[opened.data["hold"]]
    assert manual.checkpoint == "retire" and "payments-risk" not in manual.release_by

    outcome = await _release(world, RISK1, "retire")

    assert outcome.ok, outcome.message
    assert outcome.data["hold"] == plan_hold.id and outcome.data["role"] == "payments-risk"
    assert (await world.progress()).holds[manual.id].is_open


async def test_a_release_by_someone_outside_the_release_roles_is_refused_naming_who_acts(world):
    await world.started()
    before = await world.snapshot()

    outcome = await _release(world, ENG1, "preflight")

    assert_refused_and_unchanged(
        outcome, before, await world.snapshot(), says=[ENG1, "release-authority (acting: U0REL1)"]
    )


async def test_a_release_button_for_another_packet_version_is_refused(world):
    await world.started()
    before = await world.snapshot()

    outcome = await _release(world, REL1, "preflight", version=7)

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=["v7", "v1 is current"])


async def test_releasing_a_hold_already_released_says_by_whom_and_when(world):
    await world.started()
    world.advance(1)
    assert (await _release(world, REL1, "preflight")).ok
    world.advance(5)
    before = await world.snapshot()

    outcome = await _release(world, REL1, "preflight")

    assert_refused_and_unchanged(
        outcome,
        before,
        await world.snapshot(),
        says=["already released by U0REL1 as release-authority", "2026-11-25T02:02"],
    )


async def test_releasing_a_hold_that_does_not_exist_is_refused_listing_the_open_ones(world):
    await world.started()
    before = await world.snapshot()

    outcome = await _release(world, REL1, "nope")

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=["nope", "preflight/plan/1"])


# -- fifty clicks at once, on SQLite and on PostgreSQL --------------------------------------------

_ALREADY = re.compile(r"already released by (U0REL1|U0ENG1) as [a-z-]+ at \d{4}-\d\d-\d\dT\d\d:\d\d")


async def test_fifty_concurrent_releases_of_one_hold_let_exactly_one_win(any_world):
    world = any_world
    await world.canary_soaking()
    opened = await open_hold(c.OpenHold(run=world.run, user=SEC1, reason="look at the HSMs"), world.deps)
    hold = opened.data["hold"]
    world.advance(1)
    before = await world.snapshot()
    witnessed = len(await world.outbox("ledger_head"))
    # Both acting users of start_and_rollback may release a manual hold (mode any).
    users = [REL1 if i % 2 else ENG1 for i in range(50)]

    outcomes = await asyncio.gather(*(_release(world, user, hold) for user in users))

    winners = [o for o in outcomes if o.ok]
    losers = [o for o in outcomes if not o.ok]
    assert len(winners) == 1, [o.message for o in winners]
    assert len(losers) == 49
    progress = await world.progress()
    [release] = progress.holds[hold].releases
    for loser in losers:
        assert _ALREADY.search(loser.message), loser.message
        assert f"already released by {release.user} as {release.role}" in loser.message
    after = await world.snapshot()
    new = after.ledger_kinds[before.ledger :]
    assert new.count("hold_released") == 1
    assert new.count("refused") == 49
    assert after.lock_version == before.lock_version + 1
    assert dict(after.holds)[hold] == "released"
    assert [
        r.payload["by"] for r in await world.outbox("hold_released") if r.payload["hold"]["id"] == hold
    ] == [release.user]
    # The release's line, the run's live card, and the ledger's new head (a minute after the last).
    assert len(await world.outbox("ledger_head")) == witnessed + 1
    assert after.outbox == before.outbox + 3
    assert await world.ledger_verifies()
