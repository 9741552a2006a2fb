"""Adopting, rejecting and acknowledging packet versions."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.ids import ActionId
from bot.render import render
from handlers import commands as c
from handlers.adoption import reject_packet
from handlers.holds import release_hold
from handlers.resequence import change_window
from handlers.runs import ask_engine, sign_off
from packets.delta import diff
from packets.packet import Packet
from tests import handler_fixtures
from tests.bot_harness import buttons_of
from tests.handler_fixtures import (
    CHANNEL,
    ENG1,
    ENG2,
    REL1,
    REL2,
    RISK1,
    SEC1,
    STRANGER,
    assert_refused_and_unchanged,
    at,
    the_plan,
)

# pytest finds fixtures in the module namespace.
any_world = handler_fixtures.any_world
sqlite_uow = handler_fixtures.sqlite_uow
world = handler_fixtures.world

# -- adopt --------------------------------------------------------------------------------------


async def test_adopting_a_proposal_makes_it_authoritative_and_supersedes_the_previous_version(world):
    await world.started()
    await world.propose_late("canary", "21:40")
    before = await world.snapshot()

    outcome = await world.adopt(2)

    assert outcome.ok, outcome.message
    assert outcome.current_version == 2
    after = await world.snapshot()
    assert after.packets == ((1, "superseded"), (2, "authoritative"))
    assert after.authoritative_version == 2
    assert after.progress["engine"]["packet_version"] == 2
    assert after.ledger_kinds[before.ledger :] == ("packet_followed", "packet_adopted")
    adopted = (await world.entries("packet_adopted"))[0]
    assert adopted.actor == REL1
    assert adopted.payload["role"] == "release-authority"
    assert adopted.payload["supersedes"] == 1


async def test_adoption_queues_the_superseded_update_the_new_packet_and_a_dm_per_affected_principal_only(
    world,
):
    await world.started()
    await world.propose_late("canary", "21:40")
    before = await world.snapshot()
    rows = await world.packet_rows()
    expected = diff(
        Packet.from_json(rows[0].body),
        Packet.from_json(rows[1].body),
        material_shift=the_plan().material_shift,
    ).notices()

    await world.adopt(2)

    new_rows = (await world.outbox())[before.outbox :]
    channel_rows = [(r.kind, r.recipient) for r in new_rows if r.kind != "delta_dm"]
    assert channel_rows == [
        ("packet_superseded", CHANNEL),
        ("packet_posted", CHANNEL),
        ("packet_proposed_line", CHANNEL),  # the Adopt/Reject line, answered in place
        ("plan_summary", CHANNEL),  # the run's live card, updated in place
    ]
    answered = next(r for r in new_rows if r.kind == "packet_proposed_line")
    assert (
        answered.payload["target_key"] == "proposal:v2" and answered.payload["outcome"]["state"] == "adopted"
    )
    superseded = next(r for r in new_rows if r.kind == "packet_superseded")
    assert superseded.payload["version"] == 1 and superseded.payload["superseded_by"] == 2
    dms = [r for r in new_rows if r.kind == "delta_dm"]
    recipients = [r.recipient for r in dms]
    # canary moved (owner release-eng, observer payments-risk); widen and retire moved (owner
    # release-authority, observer payments-risk). The preflight did not move: security is not told,
    # and delegates who are not acting are nobody's principal.
    assert sorted(recipients) == sorted(set(recipients)) == sorted(expected) == [ENG1, REL1, RISK1]
    assert SEC1 not in recipients and REL2 not in recipients and ENG2 not in recipients
    for dm in dms:
        assert {row["checkpoint"] for row in dm.payload["changes"]} == {
            ch.checkpoint for ch in expected[dm.recipient]
        }
        assert dm.payload["version"] == 2 and dm.payload["from_version"] == 1
    eng = next(dm for dm in dms if dm.recipient == ENG1)
    assert [row["checkpoint"] for row in eng.payload["changes"]] == ["canary"]


async def test_someone_other_than_the_release_authority_may_not_adopt(world):
    await world.started()
    await world.propose_late("canary", "21:40")
    before = await world.snapshot()

    outcome = await world.adopt(2, user=ENG1)

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=["release-authority", REL1])


async def test_a_proposal_overtaken_by_a_newer_one_is_refused(world):
    await world.started()
    await world.propose_late("canary", "21:40")
    await world.propose_late("canary", "21:50")
    assert (await world.snapshot()).packets == ((1, "authoritative"), (2, "superseded"), (3, "proposed"))
    before = await world.snapshot()

    outcome = await world.adopt(2)

    assert_refused_and_unchanged(
        outcome, before, await world.snapshot(), says=["v2 is superseded", "v1 is current"]
    )


async def test_a_proposal_built_against_a_version_no_longer_current_is_refused(world):
    await world.started()
    await world.propose_late("canary", "21:40")
    # A second proposal sits beside v2 (a lost race written straight to the store), both built on v1.
    rows = await world.packet_rows()
    v2 = Packet.from_json(rows[1].body)
    async with world.uow.transaction() as tx:
        await tx.packets.add(
            run_id=world.run,
            version=3,
            state="proposed",
            hash=v2.hash,
            body=rows[1].body | {"version": 3},
            reason="a lost race",
            supersedes=1,
            at=world.clock.now(),
        )
    assert (await world.adopt(2)).ok
    before = await world.snapshot()

    outcome = await world.adopt(3)

    assert_refused_and_unchanged(
        outcome, before, await world.snapshot(), says=["proposed against v1", "v2 is now current"]
    )


async def test_adopting_the_same_version_twice_is_refused_the_second_time(world):
    await world.started()
    await world.propose_late("canary", "21:40")
    assert (await world.adopt(2)).ok
    before = await world.snapshot()

    again = await world.adopt(2)

    assert_refused_and_unchanged(
        again, before, await world.snapshot(), says=["v2 is authoritative, not proposed"]
    )


async def test_adopt_with_nothing_proposed_is_refused(world):
    await world.started()
    before = await world.snapshot()

    outcome = await world.adopt()

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=["no proposed packet"])


async def test_a_conflict_adopted_before_the_start_holds_the_protected_checkpoint_until_released(world):
    await world.open()
    assert (
        await change_window(
            c.ChangeWindow(
                run=world.run,
                user=ENG1,
                checkpoint="preflight",
                not_before=at("21:00"),
                not_after=at("21:10"),
            ),
            world.deps,
        )
    ).ok
    assert (await world.adopt(2)).ok
    for user in (REL1, RISK1):
        assert (await sign_off(c.SignOff(run=world.run, user=user, revision=world.revision), world.deps)).ok
    world.advance(1)
    assert (await ask_engine(c.EngineIntent(run=world.run, user=ENG1, move=c.Move.START), world.deps)).ok
    holds = {h.source: h.id for h in (await world.progress()).open_holds()}
    assert set(holds) == {"plan", "conflict"}

    assert (await release_hold(c.ReleaseHold(run=world.run, user=REL1, hold=holds["plan"]), world.deps)).ok
    progress = await world.progress()
    assert progress.state == "held" and progress.checkpoints["preflight"].state == "held"

    assert (
        await release_hold(c.ReleaseHold(run=world.run, user=REL1, hold=holds["conflict"]), world.deps)
    ).ok
    progress = await world.progress()
    assert progress.state == "running" and progress.checkpoints["preflight"].state == "active"


async def test_an_adopted_conflict_hold_stops_a_protected_checkpoint_already_waiting_on_its_plan_hold(world):
    await world.started()
    assert (
        await change_window(
            c.ChangeWindow(
                run=world.run,
                user=ENG1,
                checkpoint="preflight",
                not_before=at("21:00"),
                not_after=at("21:10"),
            ),
            world.deps,
        )
    ).ok
    assert (await world.adopt(2)).ok

    # The plan hold of the protected preflight was opened under v1; releasing it must not let the
    # preflight run past the conflict that the adopted v2 holds it for.
    released = await release_hold(
        c.ReleaseHold(run=world.run, user=REL1, hold="preflight/plan/1"), world.deps
    )

    assert released.ok, released.message
    progress = await world.progress()
    assert progress.packet_version == 2
    assert progress.checkpoints["preflight"].state == "held"
    assert [h.source for h in progress.open_holds()] == ["conflict"]
    conflict = progress.open_holds()[0].id

    assert (await release_hold(c.ReleaseHold(run=world.run, user=REL1, hold=conflict), world.deps)).ok
    assert (await world.progress()).checkpoints["preflight"].state == "active"


# -- reject -------------------------------------------------------------------------------------


async def test_the_release_authority_rejects_a_proposal_and_the_current_version_stays(world):
    await world.started()
    await world.propose_late("canary", "21:40")
    before = await world.snapshot()

    outcome = await reject_packet(
        c.RejectPacket(run=world.run, user=REL1, version=2, reason="not yet"), world.deps
    )

    assert outcome.ok, outcome.message
    after = await world.snapshot()
    assert after.packets == ((1, "authoritative"), (2, "rejected"))
    assert after.authoritative_version == 1
    assert after.ledger_kinds[before.ledger :] == ("packet_rejected",)
    *_, said, answered, card = await world.outbox()
    assert said.kind == "run_state"
    assert card.kind == "plan_summary" and card.payload["target_key"] == "plan"
    assert answered.kind == "packet_proposed_line" and answered.payload["outcome"]["state"] == "rejected"
    before = after

    adopt_rejected = await world.adopt(2)

    assert_refused_and_unchanged(adopt_rejected, before, await world.snapshot(), says=["v2 is rejected"])


async def test_someone_else_may_not_reject(world):
    await world.started()
    await world.propose_late("canary", "21:40")
    before = await world.snapshot()

    outcome = await reject_packet(c.RejectPacket(run=world.run, user=RISK1, version=2), world.deps)

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=["release-authority"])


# -- acknowledge --------------------------------------------------------------------------------


async def test_acknowledging_the_current_version_is_recorded(world):
    await world.started()

    outcome = await world.ack(SEC1, 1)

    assert outcome.ok, outcome.message
    snap = await world.snapshot()
    assert snap.acks == 1
    assert snap.ledger_kinds[-1] == "acknowledged"


async def test_acknowledging_a_stale_version_is_refused_naming_the_current_one(world):
    await world.started()
    await world.propose_late("canary", "21:40")
    assert (await world.adopt(2)).ok
    before = await world.snapshot()

    outcome = await world.ack(ENG1, 1)

    assert_refused_and_unchanged(
        outcome, before, await world.snapshot(), says=["v1 is no longer current", "v2"]
    )
    assert outcome.current_version == 2


async def test_acknowledging_twice_is_idempotent(world):
    await world.started()
    assert (await world.ack(ENG1)).ok
    before = await world.snapshot()

    again = await world.ack(ENG1)

    assert again.ok
    assert "already acknowledged v1" in again.message
    after = await world.snapshot()
    assert after == before


async def test_someone_with_no_role_in_the_plan_may_not_acknowledge(world):
    await world.started()
    before = await world.snapshot()

    outcome = await world.ack(STRANGER)

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=[STRANGER])


async def test_a_release_button_rendered_for_a_superseded_version_is_refused_naming_the_current_one(world):
    await world.started()
    await world.propose_late("canary", "21:40")
    assert (await world.adopt(2)).ok
    before = await world.snapshot()

    outcome = await release_hold(
        c.ReleaseHold(run=world.run, user=REL1, hold="preflight", version=1), world.deps
    )

    assert_refused_and_unchanged(outcome, before, await world.snapshot(), says=["v1", "v2 is current"])


async def test_ten_adopt_clicks_at_once_adopt_the_proposal_once(any_world):
    world = any_world
    await world.started()
    await world.propose_late("canary", "21:40")
    before = await world.snapshot()

    outcomes = await asyncio.gather(*(world.adopt(2) for _ in range(10)))

    assert [o.ok for o in outcomes].count(True) == 1
    assert all("v2 is authoritative, not proposed" in o.message for o in outcomes if not o.ok)
    after = await world.snapshot()
    assert after.packets == ((1, "superseded"), (2, "authoritative"))
    new = after.ledger_kinds[before.ledger :]
    assert new.count("packet_adopted") == 1 and new.count("refused") == 9
    assert len(await world.outbox("packet_superseded")) == 1


async def test_a_hold_released_before_its_proposal_is_adopted_shows_released_on_the_adopted_card(world):
    await world.started()
    assert (
        await change_window(
            c.ChangeWindow(
                run=world.run,
                user=ENG1,
                checkpoint="preflight",
                not_before=at("21:00"),
                not_after=at("21:10"),
            ),
            world.deps,
        )
    ).ok
    # v2 was built while the preflight's plan hold was open, so its register lists that hold.
    assert (
        await release_hold(c.ReleaseHold(run=world.run, user=REL1, hold="preflight/plan/1"), world.deps)
    ).ok
    before = await world.snapshot()

    assert (await world.adopt(2)).ok

    (card,) = [r for r in (await world.outbox())[before.outbox :] if r.kind == "packet_posted"]
    register = {(h["checkpoint"], h["source"]) for h in card.payload["packet"]["holds"]}
    assert ("preflight", "plan") in register
    # A register entry is matched to the hold opened for it by checkpoint and source: the card
    # carries that hold, released, so the entry reads released and has no Release button.
    (held,) = [h for h in card.payload["run_holds"] if h["id"] == "preflight/plan/1"]
    assert (held["checkpoint"], held["source"], held["open"]) == ("preflight", "plan", False)
    rendered = render(card.kind, card.payload)
    (entry,) = [line for line in _section_texts(rendered.blocks) if "on *preflight* · plan" in line]
    assert "`preflight/plan/1`" in entry and "released" in entry
    assert not [b for b in buttons_of(rendered.blocks) if b["action_id"] == ActionId.RELEASE_HOLD]


def _section_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["text"]["text"] for b in blocks if b.get("type") == "section" and "text" in b]
