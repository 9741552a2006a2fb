"""Supersession and bundle holds: a rebuilt artifact ends the run `superseded` and opens the new
revision's run, linked both ways; the old revision can no longer be opened; a bundle's unresolved
waiver holds the handoff until its owner says how it was resolved."""

from __future__ import annotations

from bot.intents import dispatch
from handlers import commands as c
from handlers.evidence import build_evidence, to_markdown
from handlers.holds import release_hold
from handlers.runs import ask_engine, open_run
from packets.engine.progress import HoldState, RunState
from tests import bundle_fixtures, handler_fixtures
from tests.bundle_fixtures import BUNDLE_YAML, DIGEST, BundleWorld, bundle_plan, bundle_plan_text
from tests.handler_fixtures import CHANNEL, ENG1, REL1, RISK1, STRANGER

sqlite_uow = handler_fixtures.sqlite_uow
bundle_world = bundle_fixtures.bundle_world

REBUILT = BUNDLE_YAML.replace(DIGEST, "sha256:" + "ef" * 32).replace("version: 4.2.0", "version: 4.2.1")


def supersede(
    w: BundleWorld, *, user: str = ENG1, bundle: str = REBUILT, reason: str = "rebuilt", record: str = "CHG-1"
) -> c.Supersede:
    w.advance(1)  # a run id names its second: the successor opens at least a second later
    text = bundle_plan_text(bundle=bundle).replace("change_record: CHG-1", f"change_record: {record}")
    return c.Supersede(run=w.run, user=user, plan_text=text, source="bundle-rc4.yaml", reason=reason)


async def test_a_rebuilt_artifact_supersedes_the_run_and_opens_the_new_revision_linked_both_ways(
    bundle_world: BundleWorld,
) -> None:
    w = bundle_world
    await w.signed()
    old = w.run

    outcome = await dispatch(supersede(w, reason="token-service rebuilt for CVE-2026-1234"), w.deps)

    assert outcome.ok, outcome.message
    new = str(outcome.run)
    assert new != old
    assert f"Run {old} is superseded by run {new}" in outcome.message
    assert (await w.progress()).state == RunState.SUPERSEDED
    (ended,) = await w.entries("run_superseded")
    assert ended.actor == ENG1
    assert ended.payload["superseded_by"] == new
    assert ended.payload["why"] == "token-service rebuilt for CVE-2026-1234"
    w.run = new
    (opened,) = await w.entries("run_opened")
    assert opened.payload["supersedes"] == old
    assert opened.payload["revision"] == bundle_plan(bundle=REBUILT).revision
    new_progress = await w.progress()
    newer, older = await build_evidence(new, w.deps), await build_evidence(old, w.deps)
    assert newer is not None and older is not None
    assert (newer["supersedes"], older["superseded_by"]) == (old, new)
    assert f"Superseded by run `{new}`" in to_markdown(older)
    # The new revision carries no sign-off: it is approved afresh.
    assert new_progress.state == RunState.AWAITING_SIGNOFF and not new_progress.signoffs


async def test_the_superseded_revision_can_no_longer_be_opened(bundle_world: BundleWorld) -> None:
    w = bundle_world
    await w.signed()
    old = w.run
    assert (await dispatch(supersede(w), w.deps)).ok
    async with w.uow.transaction(read_only=True) as tx:
        active = await tx.runs.active_in_channel(CHANNEL)
    assert active is not None
    w.run = active.run_id
    assert (await ask_engine(c.EngineIntent(run=w.run, user=ENG1, move=c.Move.ABORT, reason="x"), w.deps)).ok

    again = await open_run(
        c.OpenRun(plan_text=bundle_plan_text(), source="bundle-test.yaml", channel=CHANNEL, user=ENG1), w.deps
    )

    assert not again.ok
    assert f"was superseded by run {active.run_id}" in again.message and old in again.message


async def test_superseding_with_an_unchanged_bundle_is_refused(bundle_world: BundleWorld) -> None:
    w = bundle_world
    await w.signed()

    outcome = await dispatch(supersede(w, bundle=BUNDLE_YAML, record="CHG-2"), w.deps)

    assert not outcome.ok
    assert "bundle is unchanged" in outcome.message
    assert (await w.progress()).state == RunState.READY


async def test_superseding_while_traffic_is_on_the_new_path_is_refused(bundle_world: BundleWorld) -> None:
    w = bundle_world
    await w.canary_soaking()
    assert (await w.progress()).traffic == {"merchant-a": 5}

    outcome = await dispatch(supersede(w), w.deps)

    assert not outcome.ok and "roll back" in outcome.message, outcome.message
    assert (await w.progress()).state != RunState.SUPERSEDED
    assert await w.entries("run_superseded") == []


async def test_someone_who_may_not_start_or_roll_back_may_not_supersede(bundle_world: BundleWorld) -> None:
    w = bundle_world
    await w.signed()

    outcome = await dispatch(supersede(w, user=STRANGER), w.deps)

    assert not outcome.ok
    assert (await w.progress()).state == RunState.READY


UNRESOLVED = BUNDLE_YAML.replace(
    "waiver: {owner: payments-risk, state: resolved}",
    "waiver: {owner: payments-risk, state: unresolved, reason: 7.3 on two HSMs}",
)


async def test_an_unresolved_waiver_holds_the_handoff_until_its_owner_releases_it_saying_how(
    bundle_world: BundleWorld,
) -> None:
    w = bundle_world
    w.bundle = UNRESOLVED
    await w.signed()
    w.advance(1)
    assert (await ask_engine(c.EngineIntent(run=w.run, user=ENG1, move=c.Move.START), w.deps)).ok

    progress = await w.progress()
    (waiver,) = [h for h in progress.open_holds() if h.source == "bundle"]
    assert waiver.release_by == ("payments-risk",)
    assert "hsm-firmware" in waiver.reason
    assert progress.state == RunState.HELD
    refused = await release_hold(c.ReleaseHold(run=w.run, user=REL1, hold=waiver.id), w.deps)
    assert not refused.ok

    released = await dispatch(
        c.ReleaseHold(run=w.run, user=RISK1, hold=waiver.id, note="firmware 7.4 rolled to both HSMs"), w.deps
    )

    assert released.ok, released.message
    closed = (await w.progress()).holds[waiver.id]
    assert closed.state == HoldState.RELEASED
    (entry,) = [e for e in await w.entries("hold_released") if e.payload["hold"] == waiver.id]
    assert entry.actor == RISK1
    assert entry.payload["note"] == "firmware 7.4 rolled to both HSMs"
