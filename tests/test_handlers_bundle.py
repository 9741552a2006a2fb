"""A bundle run at the handoff: refused outside the deployment queue's window."""

from __future__ import annotations

from handlers import commands as c
from handlers.runs import ask_engine
from packets.engine.progress import RunState
from tests import bundle_fixtures, handler_fixtures
from tests.bundle_fixtures import BundleWorld
from tests.handler_fixtures import ENG1

# pytest finds fixtures in the module namespace.
sqlite_uow = handler_fixtures.sqlite_uow
bundle_world = bundle_fixtures.bundle_world


async def test_a_start_before_the_queue_window_opens_is_refused_with_a_clear_sentence(
    bundle_world: BundleWorld,
) -> None:
    bundle_world.bundle = bundle_world.bundle.replace(
        "start: 2026-11-24T21:00:00-05:00", "start: 2026-11-24T21:30:00-05:00"
    )
    await bundle_world.signed()
    bundle_world.set_time("21:10")

    outcome = await ask_engine(
        c.EngineIntent(run=bundle_world.run, user=ENG1, move=c.Move.START), bundle_world.deps
    )

    assert not outcome.ok
    assert outcome.message == (
        "The handoff to deployment queue prod-deploy-east is only accepted inside its window "
        "2026-11-24 21:30-23:00 -0500; it is 21:10, and the window has not opened yet."
    )
    assert (await bundle_world.progress()).state == RunState.READY
    (refused,) = await bundle_world.entries("refused")
    assert refused.payload["action"] == "start"


async def test_a_start_after_the_queue_window_closed_is_refused(bundle_world: BundleWorld) -> None:
    await bundle_world.signed()
    bundle_world.set_time("23:10")

    outcome = await ask_engine(
        c.EngineIntent(run=bundle_world.run, user=ENG1, move=c.Move.START), bundle_world.deps
    )

    assert not outcome.ok
    assert outcome.message.endswith("it is 23:10, and the window has closed.")
    assert await bundle_world.entries("run_started") == []


async def test_a_start_inside_the_queue_window_hands_the_bundle_over(bundle_world: BundleWorld) -> None:
    await bundle_world.signed()
    bundle_world.set_time("22:59")

    outcome = await ask_engine(
        c.EngineIntent(run=bundle_world.run, user=ENG1, move=c.Move.START), bundle_world.deps
    )

    assert outcome.ok, outcome.message
    (started,) = await bundle_world.entries("run_started")
    assert started.actor == ENG1
