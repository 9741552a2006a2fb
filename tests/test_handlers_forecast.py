"""A gate hold that delays the run: status, packet card and App Home show planned / actual / forecast."""

from __future__ import annotations

from datetime import timedelta

from bot.render import render, render_home
from handlers import commands as c
from handlers.holds import release_hold
from handlers.resequence import report_late
from handlers.status import packet_view, run_status, status_for_user
from packets import messages as msg
from packets.packet import Packet
from tests import handler_fixtures
from tests.handler_fixtures import ENG1, FAILING, PASSING, REL1, at

sqlite_uow = handler_fixtures.sqlite_uow
world = handler_fixtures.world


async def _held_canary(world) -> None:  # type: ignore[no-untyped-def]
    """The canary soaks from 21:17; latency breaches at 21:19 and holds it; it is 21:45 now."""
    await world.canary_soaking()
    world.set_time("21:19")
    world.telemetry.set("lookup-latency", FAILING["lookup-latency"])
    assert (await world.check()).ok
    world.set_time("21:45")
    assert (await world.progress()).state == "held"


async def test_status_shows_each_checkpoint_planned_actual_and_forecast_and_how_far_behind(world) -> None:  # type: ignore[no-untyped-def]
    await _held_canary(world)

    outcome = await run_status(world.run, world.deps)

    text = outcome.message
    # Planned 21:15-21:25 in v1; it started at 21:17 and, held, cannot end before now (21:45).
    assert "Shift merchant cohort A: planned 21:15–21:25, actual 21:17–—, forecast 21:17–21:45" in text
    assert "behind by 20 min" in text
    assert "Retire the legacy path: planned 21:25–21:25, actual not started, forecast 21:45–21:45" in text
    assert "Critical path: preflight → canary → widen → retire." in text
    assert "Forecast end 21:45, inside the window that ends 01:00." in text
    forecast = outcome.data["forecast"]
    assert forecast["behind"] == 20 and forecast["overrun"] == 0
    assert forecast["end"] == "2026-11-24T21:45:00-05:00"


async def test_the_packet_card_and_app_home_render_the_forecast_through_their_templates(world) -> None:  # type: ignore[no-untyped-def]
    await _held_canary(world)
    packet = await packet_view(world.run, world.deps)
    assert "forecast 21:45–21:45" in packet.message

    card = render(
        msg.MessageKind.PACKET_POSTED,
        {
            "run": world.run,
            **msg.PacketPosted(packet=packet.data["packet"], forecast=packet.data["forecast"]).as_json(),
        },
    )
    shown = str(card.blocks)
    assert "planned `21:15–21:25` · actual `21:17–—` · forecast `21:17–21:45` · *behind by 20 min*" in shown
    assert "Critical path: preflight → canary → widen → retire" in shown
    assert "Forecast end `21:45`" in shown

    home = (await status_for_user(ENG1, world.deps)).data
    canary = next(o for o in home["owned"] if o["checkpoint"] == "canary")
    assert canary["forecast_end"] == "2026-11-24T21:45:00-05:00" and canary["behind"] == 20
    view = render_home(
        msg.HomeView(
            user=ENG1,
            runs=tuple(home["runs"]),
            owned=tuple(home["owned"]),
            to_ack=tuple(home["to_ack"]),
            to_release=tuple(home["to_release"]),
        ).as_json()
    )
    assert "forecast `21:17–21:45`" in str(view["blocks"]) and "behind by 20 min" in str(view["blocks"])


async def test_releasing_a_long_gate_hold_proposes_the_next_version_from_the_forecast_naming_the_hold(
    world,
) -> None:  # type: ignore[no-untyped-def]
    await _held_canary(world)
    world.telemetry.set("lookup-latency", PASSING["lookup-latency"])
    hold = next(h for h in (await world.progress()).open_holds() if h.checkpoint == "canary")

    released = await release_hold(c.ReleaseHold(run=world.run, user=ENG1, hold=hold.id), world.deps)

    assert released.ok, released.message
    proposals = await world.entries("packet_proposed")
    assert len(proposals) == 1
    assert proposals[0].payload["reason"] == "forecast drift: held 26m at canary"
    rows = await world.packet_rows()
    proposed = Packet.from_json(rows[-1].document())
    assert proposed.version == 2 and rows[-1].state == "proposed"
    # Done and running checkpoints keep their actual times; nothing pending before 21:45.
    assert proposed.checkpoint("preflight").end == at("21:17")
    assert proposed.checkpoint("canary").start == at("21:17")
    assert proposed.checkpoint("retire").start >= at("21:45")
    assert [r.kind for r in await world.outbox("packet_proposed_line")]
    assert not await world.outbox("delta_dm")  # people hear by DM only once it is adopted

    # Ticks go on, the forecast moves a minute at a time: no new proposal until it is material.
    for minute in range(46, 49):
        world.set_time(f"21:{minute}")
        assert (await world.check()).ok
    assert len(await world.entries("packet_proposed")) == 1

    adopted = await world.adopt(2, user=REL1)
    assert adopted.ok, adopted.message
    dms = {r.recipient for r in await world.outbox("delta_dm")}
    assert dms and dms <= {"U0ENG1", "U0REL1", "U0RISK1", "U0SEC1"}


async def test_a_forecast_end_past_the_window_is_told_to_the_room_once_and_again_when_adopted(world) -> None:  # type: ignore[no-untyped-def]
    await world.started()
    world.advance(1)

    late = c.ReportLate(
        run=world.run, user=ENG1, checkpoint="preflight", until=at("00:55") + timedelta(days=1), reason="hsm"
    )
    assert (await report_late(late, world.deps)).ok
    world.advance(1)
    assert (await world.check()).ok  # another use case on the run: told once only

    told = [r for r in await world.outbox("run_state") if "past the window" in r.payload["state"]]
    assert len(told) == 1
    reason = told[0].payload["reason"]
    assert "window end 01:00" in reason and "retire" in reason, reason

    assert (await world.adopt(2)).ok

    adopted = [r for r in await world.outbox("run_state") if "past the window" in r.payload["state"]]
    assert len(adopted) == 2 and "v2" in adopted[1].payload["state"], adopted[1].payload
