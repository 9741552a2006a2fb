"""Use cases that change the facts: done, late, a moved window, a switched delegate.

A changed fact never changes what the engine follows: it stores a *proposed* packet and queues
one line in the channel with Adopt and Reject.
"""

from __future__ import annotations

from datetime import timedelta

from bot.render import render
from handlers import commands as c
from handlers.adoption import reject_packet
from handlers.delegates import change_delegate
from handlers.holds import release_hold
from handlers.resequence import change_window, report_done, report_late
from packets.packet import HoldSource, Packet
from tests import handler_fixtures
from tests.handler_fixtures import (
    CHANNEL,
    ENG1,
    ENG2,
    REL1,
    REL2,
    RISK1,
    SEC1,
    assert_refused_and_unchanged,
    at,
)

# pytest finds fixtures in the module namespace.
sqlite_uow = handler_fixtures.sqlite_uow
world = handler_fixtures.world

# -- done ---------------------------------------------------------------------------------------


async def test_the_owner_reporting_done_completes_the_checkpoint_and_the_canary_shifts(world):
    await world.preflight_running()
    world.set_time("21:17")

    outcome = await report_done(c.ReportDone(run=world.run, user=ENG1, checkpoint="preflight"), world.deps)

    assert outcome.ok, outcome.message
    progress = await world.progress()
    assert progress.checkpoints["preflight"].state == "done"
    assert progress.checkpoints["preflight"].done_by == (ENG1,)
    # Check before moving: the canary waits for a reading of its gates taken for its shift.
    assert progress.checkpoints["canary"].state == "ready" and world.actuator.shifts == []
    assert (await world.check()).ok
    progress = await world.progress()
    assert progress.checkpoints["canary"].state == "soaking"
    assert [(s.checkpoint, s.cohort, s.percent) for s in world.actuator.shifts] == [
        ("canary", "merchant-a", 5.0)
    ]
    assert progress.traffic == {"merchant-a": 5.0}


async def test_someone_else_reporting_done_is_refused_naming_the_owner(world):
    await world.preflight_running()
    before = await world.snapshot()

    outcome = await report_done(c.ReportDone(run=world.run, user=SEC1, checkpoint="preflight"), world.deps)

    assert_refused_and_unchanged(
        outcome, before, await world.snapshot(), says=[SEC1, "release-eng (acting: U0ENG1)"]
    )
    assert world.actuator.shifts == []


async def test_done_for_a_checkpoint_that_completes_on_its_gates_is_refused(world):
    await world.canary_soaking()
    before = await world.snapshot()

    outcome = await report_done(c.ReportDone(run=world.run, user=ENG1, checkpoint="canary"), world.deps)

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=["gates pass"])


# -- late ---------------------------------------------------------------------------------------


async def test_a_late_report_proposes_a_packet_and_leaves_the_authoritative_one_alone(world):
    await world.started()
    before = await world.snapshot()

    outcome = await report_late(
        c.ReportLate(
            run=world.run, user=ENG1, checkpoint="canary", until=at("21:40"), reason="still draining"
        ),
        world.deps,
    )

    assert outcome.ok, outcome.message
    assert outcome.data["proposed"] == 2
    assert outcome.current_version == 1
    after = await world.snapshot()
    assert after.packets == ((1, "authoritative"), (2, "proposed"))
    assert after.authoritative_version == 1
    assert after.progress["engine"] == before.progress["engine"], "the engine does not follow a proposal"
    assert after.ledger_kinds[before.ledger :] == ("late_reported", "packet_proposed")
    proposal = Packet.from_json((await world.packet_rows())[1].body)
    assert proposal.supersedes == 1
    assert proposal.checkpoint("canary").end == at("21:40")
    assert proposal.checkpoint("widen").start == at("21:40")


async def test_a_late_report_queues_one_channel_line_with_adopt_and_reject(world):
    await world.started()
    before = await world.snapshot()

    await world.propose_late("canary", "21:40")

    new_rows = (await world.outbox())[before.outbox :]
    # The proposal line, and the run's live card updated in place with the late report.
    assert [(r.kind, r.recipient) for r in new_rows] == [
        ("packet_proposed_line", CHANNEL),
        ("plan_summary", CHANNEL),
    ]
    payload = new_rows[0].payload
    assert payload["version"] == 2
    assert payload["counts"]["moved"] == 3
    message = render(new_rows[0].kind, payload)
    buttons = [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["Adopt v2", "Reject v2"]
    assert not await world.outbox("delta_dm"), "nobody is told by DM before adoption"


async def test_a_late_report_without_material_change_makes_no_packet(world):
    await world.started()
    before = await world.snapshot()

    # The preflight was to end at 21:15; 21:17 moves it and everything after by 2 min < 5 min.
    outcome = await report_late(
        c.ReportLate(run=world.run, user=ENG1, checkpoint="preflight", until=at("21:17")), world.deps
    )

    assert outcome.ok, outcome.message
    assert "no material change" in outcome.message
    after = await world.snapshot()
    assert after.packets == before.packets
    new_rows = (await world.outbox())[before.outbox :]
    assert [r.kind for r in new_rows] == ["plan_summary"], "only the live card changes, no proposal"
    assert after.ledger_kinds[before.ledger :] == ("late_reported",)


async def test_a_late_report_for_an_unknown_checkpoint_is_refused_listing_the_checkpoints(world):
    await world.started()
    before = await world.snapshot()

    outcome = await report_late(
        c.ReportLate(run=world.run, user=ENG1, checkpoint="nope", until=at("21:40")), world.deps
    )

    assert_refused_and_unchanged(
        outcome, before, await world.snapshot(), says=["nope", "preflight", "canary"]
    )


async def test_a_late_report_with_a_time_already_past_is_refused(world):
    await world.started()
    world.set_time("21:10")
    before = await world.snapshot()

    outcome = await report_late(
        c.ReportLate(run=world.run, user=ENG1, checkpoint="preflight", until=at("21:05")), world.deps
    )

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=["21:05", "already passed"])


async def test_a_late_report_by_someone_who_neither_owns_nor_runs_the_cutover_is_refused(world):
    await world.started()
    before = await world.snapshot()

    outcome = await report_late(
        c.ReportLate(run=world.run, user=RISK1, checkpoint="canary", until=at("21:40")), world.deps
    )

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=[RISK1, "release-eng"])


# -- windows ------------------------------------------------------------------------------------


async def test_a_window_a_protected_checkpoint_no_longer_fits_holds_it_as_a_conflict_in_the_proposal(world):
    await world.started()

    outcome = await change_window(
        c.ChangeWindow(
            run=world.run, user=ENG1, checkpoint="preflight", not_before=at("21:00"), not_after=at("21:10")
        ),
        world.deps,
    )

    assert outcome.ok, outcome.message
    assert outcome.data["proposed"] == 2
    proposal = Packet.from_json((await world.packet_rows())[1].body)
    line = proposal.checkpoint("preflight")
    assert line.held
    assert line.conflict and "21:10" in line.conflict
    assert line.end <= at("21:10"), "a protected checkpoint is not moved past its window"
    conflict_holds = [h for h in proposal.holds if h.source == HoldSource.CONFLICT]
    assert [h.checkpoint for h in conflict_holds] == ["preflight"]
    assert conflict_holds[0].release_by == ("release-authority",)
    # Its dependents are scheduled after its real earliest end, so `after` still holds.
    assert proposal.checkpoint("canary").start >= at("21:15")
    assert "preflight" in proposal.checkpoint("canary").waits_on
    snap = await world.snapshot()
    assert snap.packets == ((1, "authoritative"), (2, "proposed"))
    assert (await world.outbox("packet_proposed_line"))[0].payload["counts"]["conflict"] == 1


async def test_someone_who_neither_owns_the_checkpoint_nor_adopts_packets_may_not_move_its_window(world):
    await world.started()
    before = await world.snapshot()

    outcome = await change_window(
        c.ChangeWindow(
            run=world.run, user=SEC1, checkpoint="preflight", not_before=at("21:00"), not_after=at("21:10")
        ),
        world.deps,
    )

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=[SEC1])


# -- delegates ----------------------------------------------------------------------------------


async def test_a_delegate_switch_waits_for_the_packet_carrying_it_and_the_previous_user_acts_meanwhile(world):
    await world.started()
    before = await world.snapshot()

    outcome = await change_delegate(
        c.ChangeDelegate(run=world.run, user=REL1, role="release-authority", to_user=REL2), world.deps
    )

    assert outcome.ok, outcome.message
    assert (
        "U0REL2 will act for release-authority once v2 is adopted; U0REL1 acts until then" in outcome.message
    )
    after = await world.snapshot()
    assert after.acting.get("release-authority", REL1) == REL1
    assert after.acting_changes == 0
    assert after.ledger_kinds[before.ledger :] == ("acting_change_reported", "packet_proposed")
    proposal = Packet.from_json((await world.packet_rows())[-1].body)
    assert proposal.checkpoint("widen").owner_user == REL2
    assert after.authoritative_version == 1
    # Until v2 is adopted, the new delegate holds no authority.
    refused = await release_hold(c.ReleaseHold(run=world.run, user=REL2, hold="preflight"), world.deps)
    assert not refused.ok and REL1 in refused.message


async def test_an_adopted_delegate_switch_makes_the_new_user_act_from_that_moment(world):
    await world.started()
    assert (
        await change_delegate(
            c.ChangeDelegate(run=world.run, user=REL1, role="release-authority", to_user=REL2), world.deps
        )
    ).ok

    assert (await world.adopt(2)).ok

    after = await world.snapshot()
    assert after.acting["release-authority"] == REL2
    assert after.acting_changes == 1
    released = await release_hold(c.ReleaseHold(run=world.run, user=REL2, hold="preflight"), world.deps)
    assert released.ok, released.message


async def test_a_rejected_delegate_switch_leaves_the_previous_user_acting(world):
    await world.started()
    assert (
        await change_delegate(
            c.ChangeDelegate(run=world.run, user=REL1, role="release-authority", to_user=REL2), world.deps
        )
    ).ok

    rejected = await reject_packet(c.RejectPacket(run=world.run, user=REL1, reason="keep REL1"), world.deps)

    assert rejected.ok, rejected.message
    after = await world.snapshot()
    assert after.acting.get("release-authority", REL1) == REL1 and after.acting_changes == 0
    assert not (await release_hold(c.ReleaseHold(run=world.run, user=REL2, hold="preflight"), world.deps)).ok


async def test_rejecting_one_fact_of_three_keeps_the_other_two_pending_and_proposes_them_again(world):
    await world.started()
    world.advance(1)
    late = await report_late(
        c.ReportLate(run=world.run, user=ENG1, checkpoint="canary", until=at("22:10"), reason="pumps"),
        world.deps,
    )
    window = await change_window(
        c.ChangeWindow(
            run=world.run, user=REL1, checkpoint="retire", not_before=at("23:30"), not_after=at("23:50")
        ),
        world.deps,
    )
    switch = await change_delegate(
        c.ChangeDelegate(run=world.run, user=REL1, role="release-authority", to_user=REL2), world.deps
    )
    assert late.ok and window.ok and switch.ok, (late.message, window.message, switch.message)
    (line,) = (await world.outbox("packet_proposed_line"))[-1:]
    assert [f.split(" ")[0] for f in line.payload["facts"]] == ["#1", "#2", "#3"]
    standing = max(r.version for r in await world.packet_rows())

    outcome = await reject_packet(
        c.RejectPacket(run=world.run, user=REL1, version=standing, facts=(2,), reason="window stays"),
        world.deps,
    )

    assert outcome.ok, outcome.message
    assert f"v{standing} rejected: #2 dropped" in outcome.message
    rebuilt = max(r.version for r in await world.packet_rows())
    assert rebuilt == standing + 1 and f"v{rebuilt} proposed" in outcome.message
    (again,) = (await world.outbox("packet_proposed_line"))[-1:]
    assert [f.split(" ")[0] for f in again.payload["facts"]] == ["#1", "#3"]
    proposal = Packet.from_json((await world.packet_rows())[-1].body)
    assert proposal.checkpoint("widen").owner_user == REL2
    (entry,) = await world.entries("packet_rejected")
    assert [f["seq"] for f in entry.payload["facts"]] == [2] and entry.payload["kept"] == [1, 3]

    assert (await world.adopt(rebuilt)).ok
    assert (await world.snapshot()).acting["release-authority"] == REL2


async def test_rejecting_a_change_the_proposal_does_not_carry_is_refused_naming_what_it_carries(world):
    await world.started()
    world.advance(1)
    assert (
        await report_late(
            c.ReportLate(run=world.run, user=ENG1, checkpoint="canary", until=at("22:10")), world.deps
        )
    ).ok

    outcome = await reject_packet(c.RejectPacket(run=world.run, user=REL1, facts=(7,)), world.deps)

    assert not outcome.ok and "carries #1; #7 is not one of them" in outcome.message


async def test_switching_to_someone_who_is_not_an_approved_delegate_is_refused(world):
    await world.started()
    before = await world.snapshot()

    outcome = await change_delegate(
        c.ChangeDelegate(run=world.run, user=REL1, role="release-authority", to_user=ENG2), world.deps
    )

    assert_refused_and_unchanged(
        outcome, before, await world.snapshot(), says=[ENG2, "not an approved delegate"]
    )


async def test_someone_without_the_delegate_authority_may_not_switch_a_role(world):
    await world.started()
    before = await world.snapshot()

    outcome = await change_delegate(
        c.ChangeDelegate(run=world.run, user=ENG1, role="release-eng", to_user=ENG2), world.deps
    )

    assert_refused_and_unchanged(
        outcome, before, await world.snapshot(), says=[ENG1, "release-authority (acting: U0REL1)"]
    )


async def test_after_an_adopted_switch_the_new_delegate_releases_a_hold_and_the_old_primary_cannot(world):
    await world.started()
    assert (
        await change_delegate(
            c.ChangeDelegate(run=world.run, user=REL1, role="release-authority", to_user=REL2), world.deps
        )
    ).ok
    assert (await world.adopt(2)).ok
    before = await world.snapshot()

    refused = await release_hold(c.ReleaseHold(run=world.run, user=REL1, hold="preflight"), world.deps)

    assert_refused_and_unchanged(
        refused, before, await world.snapshot(), says=[REL1, "release-authority (acting: U0REL2)"]
    )

    released = await release_hold(c.ReleaseHold(run=world.run, user=REL2, hold="preflight"), world.deps)

    assert released.ok, released.message
    [hold] = (await world.progress()).holds.values()
    assert hold.state == "released"
    assert [(r.user, r.role, r.acting_for) for r in hold.releases] == [(REL2, "release-authority", REL1)]
    assert [(h.state, h.released_by) for h in await world.hold_rows()] == [("released", REL2)]


async def test_a_window_that_closes_before_it_opens_is_refused(world):
    from datetime import timedelta

    await world.started()
    before = await world.snapshot()
    opens = world.clock.now() + timedelta(minutes=30)
    change = c.ChangeWindow(
        run=world.run,
        user=REL1,
        checkpoint="preflight",
        not_before=opens,
        not_after=opens - timedelta(minutes=5),
    )
    outcome = await change_window(change, world.deps)
    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=["must close after it opens"])


async def test_a_rejected_late_report_does_not_come_back_in_the_next_proposal(world):
    from handlers.adoption import reject_packet
    from packets.packet import Packet

    await world.started()
    await world.propose_late("canary", "22:40")
    rejected = await reject_packet(c.RejectPacket(run=world.run, user=REL1, version=2), world.deps)
    assert rejected.ok, rejected.message
    switched = await change_delegate(
        c.ChangeDelegate(run=world.run, user=REL1, role="release-authority", to_user=REL2), world.deps
    )
    assert switched.ok, switched.message

    rows = {r.version: r for r in await world.packet_rows()}
    first, after = Packet.from_json(rows[1].document()), Packet.from_json(rows[3].document())
    # No 22:40 again: only the minute the held preflight has waited (nothing is planned before now).
    assert after.checkpoint("canary").end == first.checkpoint("canary").end + timedelta(minutes=1)


async def test_a_released_plan_hold_is_not_shown_held_again_in_a_later_proposal(world):
    from packets.packet import Packet

    await world.canary_passed()  # the widen hold is open now
    released = await release_hold(c.ReleaseHold(run=world.run, user=REL1, hold="widen"), world.deps)
    assert released.ok, released.message
    await world.propose_late("retire", "23:50")

    latest = max(await world.packet_rows(), key=lambda r: r.version)
    packet = Packet.from_json(latest.document())
    assert packet.checkpoint("widen").held is False
    assert packet.checkpoint("retire").held is True


async def test_the_proposal_shows_what_it_changes_old_to_new_before_anyone_adopts_it(world):
    from handlers.status import packet_view

    await world.started()
    await world.propose_late("canary", "21:40")

    [line] = await world.outbox("packet_proposed_line")
    message = render(line.kind, line.payload)
    shown = "\n".join(
        str(part.get("text", ""))
        for b in message.blocks
        for part in [b.get("text") or {}, *b.get("elements", [])]
        if isinstance(part, dict)
    )
    assert "What v2 changes against the packet in force (old → new):" in shown
    assert "reported by <@U0ENG1>" in shown, "the reporter is a mention, not escaped text"
    assert "• *Shift merchant cohort A* moved `21:15` → `21:16`: starts +1 min, ends +15 min" in shown, shown
    assert "• *Release to widen beyond cohort A* moved `21:25` → `21:40`: +15 min" in shown

    proposal = await packet_view(world.run, world.deps, version=2)
    current = await packet_view(world.run, world.deps)
    missing = await packet_view(world.run, world.deps, version=9)
    assert proposal.ok and proposal.message.startswith("*Packet v2* (proposed)")
    assert "Against v1, the packet in force: " in proposal.message and "moved" in proposal.message
    assert current.ok and current.message.startswith("*Packet v1*")
    assert not missing.ok and missing.message == f"Run {world.run} has no packet v9; v1 is in force."
