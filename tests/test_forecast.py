"""Planned, actual, forecast: packets.forecast over the miniature payments cutover."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from packets.engine.progress import CheckpointState, HoldRecord, RunProgress, RunState
from packets.forecast import actuals, describe_cause, forecast, forecast_packet
from packets.packet import HoldSource, Packet, PacketState
from packets.plan import Plan
from packets.timeline import Facts, build_packet
from tests.engine_fixtures import T0, make_plan, minutes

# prep 10m -> canary (merchant-a, soak 20m) -> widen (hold) -> retire (protected, 10m)
CHECKPOINTS: list[dict[str, Any]] = [
    {"id": "prep", "title": "Prepare", "owner": "release-eng", "duration": "10m"},
    {
        "id": "canary",
        "title": "Shift merchant cohort A",
        "owner": "release-eng",
        "after": ["prep"],
        "traffic": {"percent": 1, "cohort": "merchant-a"},
        "soak": "20m",
        "gates": ["latency"],
    },
    {
        "id": "widen",
        "title": "Release to widen",
        "owner": "release-authority",
        "after": ["canary"],
        "hold": {"release_by": ["release-authority"]},
    },
    {
        "id": "retire",
        "title": "Retire legacy",
        "owner": "release-authority",
        "after": ["widen"],
        "duration": "10m",
    },
]


def plan_of(checkpoints: list[dict[str, Any]] | None = None) -> Plan:
    return make_plan(CHECKPOINTS if checkpoints is None else checkpoints)


def v1(plan: Plan) -> Packet:
    return build_packet(
        plan,
        Facts(),
        version=1,
        supersedes=None,
        reason="approved",
        acting={},
        state=PacketState.AUTHORITATIVE,
    )


def running(plan: Plan) -> RunProgress:
    return RunProgress(
        run_id="r1",
        plan_revision=plan.revision,
        packet_version=1,
        state=RunState.RUNNING,
        opened_at=T0,
        started_at=T0,
    )


def test_before_anything_happens_the_forecast_is_the_plan() -> None:
    plan = plan_of()
    packet = v1(plan)
    seen = forecast(plan=plan, packet=packet, progress=running(plan), facts=Facts(), now=T0)
    for line in seen.checkpoints:
        assert (line.start, line.end) == (line.planned_start, line.planned_end)
        assert line.actual_start is None and line.actual_end is None
        assert line.behind == timedelta(0)
    assert seen.critical_path == ("prep", "canary", "widen", "retire")
    assert seen.end == minutes(40)
    assert seen.overrun == timedelta(0)


def test_a_hold_on_the_canary_pushes_everything_after_it_and_names_how_far_behind() -> None:
    plan = plan_of()
    packet = v1(plan)
    progress = running(plan).with_checkpoint(
        "prep", state=CheckpointState.DONE, started_at=T0, done_at=minutes(10)
    )
    progress = progress.with_checkpoint(
        "canary", state=CheckpointState.HELD, started_at=minutes(10), soak_until=minutes(30)
    )
    progress = progress.with_hold(
        HoldRecord(
            id="gate:canary",
            checkpoint="canary",
            reason="latency",
            source=HoldSource.GATE,
            release_by=("release-eng",),
            mode="any",
            opened_at=minutes(15),
            opened_by="gate:latency",
        )
    )
    now = minutes(55)
    seen = forecast(plan=plan, packet=packet, progress=progress, facts=Facts(), now=now)
    prep, canary, widen, retire = (seen.of(c) for c in ("prep", "canary", "widen", "retire"))
    assert (prep.actual_start, prep.actual_end) == (T0, minutes(10))
    assert canary.actual_start == minutes(10) and canary.actual_end is None
    # Still held at 21:55: it cannot end before now; what follows cannot start before it ends.
    assert canary.end == now
    assert widen.start == now and retire.start == now and retire.end == now + timedelta(minutes=10)
    assert retire.behind == timedelta(minutes=25)
    assert seen.behind == timedelta(minutes=25)
    assert [c.id for c in seen.drifted(plan.material_shift)] == ["canary", "widen", "retire"]
    assert describe_cause(progress, since=T0, now=now) == "held 40m at canary"


def test_nothing_pending_is_forecast_before_now_even_when_its_predecessor_finished_early() -> None:
    plan = plan_of()
    packet = v1(plan)
    progress = running(plan).with_checkpoint(
        "prep", state=CheckpointState.DONE, started_at=T0, done_at=minutes(4)
    )
    seen = forecast(plan=plan, packet=packet, progress=progress, facts=Facts(), now=minutes(6))
    assert seen.of("canary").start == minutes(6)
    assert seen.of("retire").end == minutes(36)


def test_a_late_report_and_a_people_done_are_actuals_and_forecasts() -> None:
    plan = plan_of()
    packet = v1(plan)
    facts = Facts().mark_done("prep", minutes(12)).report_late("canary", minutes(50))
    seen = forecast(plan=plan, packet=packet, progress=running(plan), facts=facts, now=minutes(13))
    assert seen.of("prep").actual_end == minutes(12)
    assert seen.of("canary").end == minutes(50)
    assert actuals(running(plan), facts)["prep"].ended_at == minutes(12)


def test_the_forecast_end_is_measured_against_the_window_end() -> None:
    plan = plan_of()
    packet = v1(plan)
    seen = forecast(plan=plan, packet=packet, progress=running(plan), facts=Facts(), now=minutes(235))
    assert seen.end == minutes(275)
    assert seen.overrun == timedelta(minutes=35)


def test_parallel_branches_are_forecast_side_by_side_and_the_longer_is_critical() -> None:
    plan = plan_of(
        [
            {"id": "prep", "title": "Prepare", "owner": "release-eng", "duration": "10m"},
            {
                "id": "short",
                "title": "Short branch",
                "owner": "release-eng",
                "after": ["prep"],
                "duration": "5m",
            },
            {
                "id": "long",
                "title": "Long branch",
                "owner": "release-eng",
                "after": ["prep"],
                "duration": "30m",
            },
            {
                "id": "join",
                "title": "Join",
                "owner": "release-eng",
                "after": ["short", "long"],
                "duration": "5m",
            },
        ]
    )
    seen = forecast(plan=plan, packet=v1(plan), progress=running(plan), facts=Facts(), now=T0)
    assert seen.of("short").start == seen.of("long").start == minutes(10)
    assert seen.critical_path == ("prep", "long", "join")
    assert not seen.of("short").critical


def test_traffic_checkpoints_on_one_cohort_never_overlap_even_without_an_after() -> None:
    plan = plan_of(
        [
            {"id": "prep", "title": "Prepare", "owner": "release-eng", "duration": "10m"},
            {
                "id": "a",
                "title": "A",
                "owner": "release-eng",
                "after": ["prep"],
                "traffic": {"percent": 1, "cohort": "merchant-a"},
                "soak": "10m",
            },
            {
                "id": "b",
                "title": "B",
                "owner": "release-eng",
                "after": ["prep"],
                "traffic": {"percent": 5, "cohort": "merchant-a"},
                "soak": "10m",
            },
        ]
    )
    packet = v1(plan)
    assert packet.checkpoint("b").start == packet.checkpoint("a").end


def test_a_packet_built_from_the_forecast_keeps_actual_times_and_plans_nothing_pending_before_now() -> None:
    plan = plan_of()
    progress = running(plan).with_checkpoint(
        "prep", state=CheckpointState.DONE, started_at=T0, done_at=minutes(10)
    )
    progress = progress.with_checkpoint("canary", state=CheckpointState.SOAKING, started_at=minutes(12))
    packet = forecast_packet(
        plan=plan,
        progress=progress,
        facts=Facts(),
        now=minutes(50),
        version=2,
        supersedes=1,
        reason="held 20m at canary",
        acting={},
    )
    assert (packet.checkpoint("prep").start, packet.checkpoint("prep").end) == (T0, minutes(10))
    assert packet.checkpoint("canary").start == minutes(12)
    assert packet.checkpoint("canary").end == minutes(50)
    assert packet.checkpoint("widen").start >= minutes(50)
    assert packet.checkpoint("retire").start >= minutes(50)
