"""The evidence packet of a whole run, and the read-only views: status for a user, run status."""

from __future__ import annotations

from handlers import commands as c
from handlers.delegates import change_delegate
from handlers.evidence import export_evidence
from handlers.holds import release_hold
from handlers.status import ledger_tail, packet_view, run_status, status_for_user
from tests import handler_fixtures
from tests.handler_fixtures import (
    CHANNEL,
    ENG1,
    REL1,
    REL2,
    RISK1,
    SEC1,
    STRANGER,
)

# pytest finds fixtures in the module namespace.
sqlite_uow = handler_fixtures.sqlite_uow
world = handler_fixtures.world


async def _release(world, user: str, hold: str):
    outcome = await release_hold(c.ReleaseHold(run=world.run, user=user, hold=hold), world.deps)
    assert outcome.ok, outcome.message
    return outcome


async def _whole_run(world) -> None:
    """Late report adopted, the release authority handed to its delegate, every hold released."""
    await world.started()
    await world.propose_late("canary", "21:40")
    assert (await world.adopt(2, user=REL1)).ok
    world.advance(1)
    switched = await change_delegate(
        c.ChangeDelegate(run=world.run, user=REL1, role="release-authority", to_user=REL2), world.deps
    )
    assert switched.ok, switched.message
    # The switch waits for its packet; U0REL1 adopts it, and U0REL2 acts from then on.
    assert (await world.adopt(3, user=REL1)).ok
    await _release(world, REL2, "preflight")
    world.set_time("21:17")
    from handlers.resequence import report_done

    assert (await report_done(c.ReportDone(run=world.run, user=ENG1, checkpoint="preflight"), world.deps)).ok
    assert (await world.check()).ok  # read for the canary's shift (check before moving)
    for minute in range(18, 28):
        world.set_time(f"21:{minute}")
        assert (await world.check()).ok
    world.set_time("21:30")
    await _release(world, REL2, "widen")
    world.set_time("21:35")
    await _release(world, RISK1, "retire")
    await _release(world, REL2, "retire")
    assert (await world.progress()).state == "completed"


async def test_the_evidence_of_a_whole_run_ties_sign_offs_packets_holds_and_gates_to_a_verified_ledger(world):
    await _whole_run(world)

    outcome = await export_evidence(c.ExportEvidence(run=world.run), world.deps)

    assert outcome.ok, outcome.message
    evidence = outcome.data["evidence"]
    assert evidence["final_state"] == "completed"
    assert [(s["role"], s["user"], s["revision"]) for s in evidence["signoffs"]] == [
        ("release-authority", REL1, world.revision),
        ("payments-risk", RISK1, world.revision),
    ]

    packets = {p["version"]: p for p in evidence["packets"]}
    assert {v: p["state"] for v, p in packets.items()} == {
        1: "superseded",
        2: "superseded",
        3: "authoritative",
    }
    assert packets[2]["adopted"]["by"] == REL1 and packets[2]["adopted"]["role"] == "release-authority"
    assert packets[3]["adopted"]["by"] == REL1 and packets[3]["adopted"]["role"] == "release-authority"
    assert packets[3]["supersedes"] == 2

    holds = {h["checkpoint"]: h for h in evidence["holds"]}
    assert [(r["user"], r["role"], r["on_behalf_of"]) for r in holds["preflight"]["releases"]] == [
        (REL2, "release-authority", REL1)
    ]
    assert holds["retire"]["mode"] == "all"
    assert [(r["user"], r["role"], r["on_behalf_of"]) for r in holds["retire"]["releases"]] == [
        (RISK1, "payments-risk", None),
        (REL2, "release-authority", REL1),
    ]
    assert all(h["state"] == "released" for h in evidence["holds"])
    # `widen` has no gates of its own: its releaser saw the canary's, each at its latest reading.
    [widen_release] = holds["widen"]["releases"]
    seen = {t["gate"]: t for t in widen_release["telemetry"]}
    assert set(seen) == {"auth-success", "lookup-latency", "fallback-health", "error-rate", "webhook-latency"}
    assert {t["checkpoint"] for t in seen.values()} == {"canary"}
    assert all(t["at"] <= widen_release["at"] and t["at"].endswith("-05:00") for t in seen.values())

    canary = next(r for r in evidence["readiness"] if r["checkpoint"] == "canary")
    assert all(len(results) == 3 for results in canary["gate_results"].values())
    assert [(t["cohort"], t["percent"]) for t in evidence["traffic"]] == [("merchant-a", 5.0)]

    ledger = evidence["ledger"]
    assert ledger["verified"] is True and ledger["problem"] == ""
    async with world.uow.transaction(read_only=True) as tx:
        head = await tx.ledger.head(world.run)
    assert ledger["head"] == head.hash and ledger["entries"] == head.seq

    markdown = outcome.data["markdown"]
    assert "on behalf of U0REL1" in markdown
    assert head.hash in markdown and "verified" in markdown
    [queued] = await world.outbox("evidence")
    assert queued.recipient == CHANNEL
    assert queued.payload["ledger_ok"] is True and queued.payload["ledger_head"] == head.hash


async def test_the_evidence_lists_refusals_and_rollbacks(world):
    await world.canary_soaking()
    assert not (await release_hold(c.ReleaseHold(run=world.run, user=SEC1, hold="preflight"), world.deps)).ok
    from handlers.runs import ask_engine

    assert (
        await ask_engine(c.Rollback(run=world.run, user=REL1, scope="all", reason="abandon"), world.deps)
    ).ok

    evidence = (await export_evidence(c.ExportEvidence(run=world.run), world.deps)).data["evidence"]

    assert evidence["final_state"] == "rolled_back"
    assert [r["actor"] for r in evidence["refusals"]] == [SEC1]
    assert "global_rollback" in [r["kind"] for r in evidence["rollbacks"]]
    assert evidence["ledger"]["verified"] is True


async def test_evidence_for_a_run_that_does_not_exist_is_refused(world):
    outcome = await export_evidence(c.ExportEvidence(run="nope"), world.deps)

    assert not outcome.ok and "nope" in outcome.message


# -- status for a user --------------------------------------------------------------------------


async def test_status_for_a_user_lists_what_they_own_must_acknowledge_and_may_release(world):
    await world.started()

    rel = (await status_for_user(REL1, world.deps)).data
    eng = (await status_for_user(ENG1, world.deps)).data
    sec = (await status_for_user(SEC1, world.deps)).data
    stranger = (await status_for_user(STRANGER, world.deps)).data

    assert [o["checkpoint"] for o in rel["owned"]] == ["widen", "retire"]
    assert [(h["hold"], h["checkpoint"]) for h in rel["to_release"]] == [("preflight/plan/1", "preflight")]
    assert [a["version"] for a in rel["to_ack"]] == [1]
    assert [o["checkpoint"] for o in eng["owned"]] == ["preflight", "canary"]
    assert next(o for o in eng["owned"] if o["checkpoint"] == "preflight")["held"] is True
    assert eng["to_release"] == []
    assert sec["owned"] == [] and sec["to_release"] == [] and [a["version"] for a in sec["to_ack"]] == [1]
    assert stranger == {"user": STRANGER, "runs": [], "owned": [], "to_ack": [], "to_release": []}


async def test_status_follows_acknowledgements_and_adopted_delegate_switches(world):
    await world.started()
    assert (await world.ack(ENG1)).ok
    switched = await change_delegate(
        c.ChangeDelegate(run=world.run, user=REL1, role="release-authority", to_user=REL2), world.deps
    )
    assert switched.ok
    assert (await world.adopt(2, user=REL1)).ok
    assert (await world.ack(ENG1, 2)).ok

    eng = (await status_for_user(ENG1, world.deps)).data
    rel1 = (await status_for_user(REL1, world.deps)).data
    rel2 = (await status_for_user(REL2, world.deps)).data

    assert eng["to_ack"] == []
    assert rel1["owned"] == [] and rel1["to_release"] == [] and rel1["to_ack"] == []
    assert [r["run"] for r in rel1["runs"]] == [world.run], (
        "still a member of the plan, so still shown the run"
    )
    assert [h["hold"] for h in rel2["to_release"]] == ["preflight/plan/1"]
    assert [o["checkpoint"] for o in rel2["owned"]] == ["widen", "retire"]


async def test_a_finished_run_drops_out_of_everyones_status(world):
    await world.canary_soaking()
    from handlers.runs import ask_engine

    assert (
        await ask_engine(c.Rollback(run=world.run, user=REL1, scope="all", reason="abandon"), world.deps)
    ).ok

    assert (await status_for_user(ENG1, world.deps)).data["runs"] == []


async def test_run_status_packet_view_and_ledger_tail_describe_the_run(world):
    await world.canary_soaking()

    status = await run_status(world.run, world.deps)
    view = await packet_view(world.run, world.deps)
    tail = await ledger_tail(world.run, 3, world.deps)

    assert status.ok and "Shift merchant cohort A (soaking)" in status.message
    assert "merchant-a 5%" in status.message
    assert view.ok and "*Packet v1*" in view.message and "[done]" in view.message
    assert tail.ok and len(tail.message.splitlines()) == 3
    assert not (await run_status("nope", world.deps)).ok


async def test_someone_with_no_role_cannot_post_the_evidence_to_the_war_room(world):
    await world.started()
    before = await world.snapshot()
    outcome = await export_evidence(c.ExportEvidence(run=world.run, user=STRANGER), world.deps)
    handler_fixtures.assert_refused_and_unchanged(
        outcome, before, await world.snapshot(), says=["does not act for any role"]
    )


async def test_the_evidence_tells_freezes_rejections_and_delegate_switches_in_the_plans_offset(world):
    from handlers.adoption import reject_packet
    from handlers.runs import ask_engine

    await world.canary_soaking()
    world.advance(1)
    await world.propose_late("canary", "21:50")
    rejected = await reject_packet(
        c.RejectPacket(run=world.run, user=REL1, reason="drain is on track"), world.deps
    )
    assert rejected.ok, rejected.message
    switched = await change_delegate(
        c.ChangeDelegate(run=world.run, user=REL1, role="release-authority", to_user=REL2), world.deps
    )
    assert switched.ok, switched.message
    assert (await world.adopt(user=REL1)).ok  # the switch takes effect once its packet is adopted
    world.advance(1)
    move = c.EngineIntent(run=world.run, user=REL2, move=c.Move.FREEZE, reason="legacy vault is down")
    assert (await ask_engine(move, world.deps)).ok
    world.advance(32)
    assert (await ask_engine(c.EngineIntent(run=world.run, user=REL2, move=c.Move.UNFREEZE), world.deps)).ok

    evidence = (await export_evidence(c.ExportEvidence(run=world.run), world.deps)).data["evidence"]

    steps = evidence["steps"]
    kinds = [s["kind"] for s in steps]
    for kind in ("packet_rejected", "acting_changed", "run_frozen", "run_unfrozen"):
        assert kind in kinds, kind
    rejection = next(s for s in steps if s["kind"] == "packet_rejected")
    assert rejection["by"] == REL1 and rejection["payload"]["reason"] == "drain is on track"
    switch = next(s for s in steps if s["kind"] == "acting_changed")
    assert (switch["payload"]["from"], switch["payload"]["to"]) == (REL1, REL2)
    assert next(s for s in steps if s["kind"] == "run_frozen")["payload"]["reason"] == "legacy vault is down"
    # Times in the plan's offset, in the order they happened.
    offset = world.deps.clock.now().astimezone(the_plan_tz(world)).isoformat()[-6:]
    assert all(s["at"].endswith(offset) for s in steps)
    assert [s["seq"] for s in steps] == sorted(s["seq"] for s in steps)
    canary = next(s for s in evidence["stages"] if s["checkpoint"] == "canary")
    assert canary["time_frozen_seconds"] == 32 * 60
    assert "frozen" in evidence_markdown(evidence)


async def test_the_evidence_tells_why_a_run_was_aborted(world):
    from handlers.runs import ask_engine

    await world.started()
    world.advance(2)
    abort = c.EngineIntent(run=world.run, user=REL1, move=c.Move.ABORT, reason="parity drift for 25 minutes")
    assert (await ask_engine(abort, world.deps)).ok

    evidence = (await export_evidence(c.ExportEvidence(run=world.run), world.deps)).data["evidence"]

    aborted = next(s for s in evidence["steps"] if s["kind"] == "run_aborted")
    assert aborted["by"] == REL1 and "parity drift for 25 minutes" in aborted["payload"]["why"]
    assert "parity drift for 25 minutes" in evidence_markdown(evidence)


def the_plan_tz(world):
    from tests.handler_fixtures import the_plan

    return the_plan().window.start.tzinfo


def evidence_markdown(evidence) -> str:
    from handlers.evidence import to_markdown

    return to_markdown(evidence)


async def test_each_stage_tells_its_gates_worst_reading_and_how_long_the_run_stood_paused(world):
    from handlers.runs import ask_engine

    await world.canary_soaking()
    pause = c.EngineIntent(run=world.run, user=REL1, move=c.Move.PAUSE, reason="vendor on the phone")
    assert (await ask_engine(pause, world.deps)).ok
    world.advance(7)
    assert (await ask_engine(c.EngineIntent(run=world.run, user=REL1, move=c.Move.RESUME), world.deps)).ok
    world.telemetry.set("lookup-latency", 0.41)
    world.advance(1)
    assert (await world.check()).ok
    world.telemetry.set("lookup-latency", 0.12)

    evidence = (await export_evidence(c.ExportEvidence(run=world.run), world.deps)).data["evidence"]

    canary = next(s for s in evidence["stages"] if s["checkpoint"] == "canary")
    assert canary["time_paused_seconds"] == 7 * 60
    gates = {g["gate"]: g for g in canary["gates"]}
    latency = gates["lookup-latency"]
    assert (latency["worst"], latency["rule"]) == (0.41, "<= 0.25")
    assert latency["failed"] == 1 and latency["checks"] >= 2 and latency["no_data"] == 0
    async with world.uow.transaction(read_only=True) as tx:
        auth = [r.value for r in await tx.gate_results.for_run(world.run) if r.gate == "auth-success"]
    assert gates["auth-success"]["worst"] == min(auth), "a floor's worst reading is its lowest"
    markdown = evidence_markdown(evidence)
    assert "lookup-latency: worst 0.41 (passes <= 0.25)" in markdown and "1 failed" in markdown
    assert "paused 7 min" in markdown


async def test_the_decision_record_retells_who_released_what_on_which_readings_and_what_would_undo_it(world):
    from handlers.decision_record import to_cdr

    await _whole_run(world)
    evidence = (await export_evidence(c.ExportEvidence(run=world.run), world.deps)).data["evidence"]

    record = to_cdr(evidence)

    assert record.startswith("# Cutover decision record: ")
    assert (
        "- U0REL2 released the hold on widen as release-authority on behalf of U0REL1 at "
        "2026-11-24T21:30:00-05:00, having seen auth-success 0.999 (pass)" in record
    ), record
    assert "- Packet v3 was adopted by U0REL1 as release-authority at " in record
    assert "- Cohort merchant-a was left at 5% on the new service." in record
    assert (
        "- When auth-success fails (it passes >= 0.995), the engine would roll the stage's cohort back; "
        "a reading without data counts as a failure." in record
    )
    assert "- preflight was protected: it could not move without a release." in record
    assert "- The run ended completed." in record
    assert "_" not in record.split("## Decision")[1].split("## Constraints")[0].replace("`", "")
