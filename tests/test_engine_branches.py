"""Parallel branches: the engine runs what the packet draws side by side.

A checkpoint starts as soon as its `after` dependencies are done, whatever else is in flight, each
with its own soak, gates and holds; two traffic checkpoints of one cohort never overlap. A stop
(a hold, a pause, a freeze) stops the whole run: every branch waits, and no branch's soak counts
the time stopped.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from packets.engine.effects import ShiftTraffic
from packets.engine.events import CheckpointDone, Pause, Resume, Tick
from packets.engine.progress import IN_FLIGHT, CheckpointState, RunState
from packets.packet import PacketState
from packets.plan import Plan
from packets.timeline import Facts, build_packet
from tests.engine_fixtures import WarRoom, make_plan, minutes

# prep, then three branches: merchant-a's canary, merchant-b's canary and telling the merchants;
# merchant-a's widen follows its canary; the close waits for everything.
BRANCHES: list[dict[str, Any]] = [
    {"id": "prep", "title": "Prepare", "owner": "release-eng"},
    {
        "id": "canary-a",
        "title": "Shift merchant cohort A",
        "owner": "release-eng",
        "after": ["prep"],
        "traffic": {"percent": 1, "cohort": "merchant-a"},
        "soak": "20m",
        "gates": ["auth-success"],
    },
    {
        "id": "canary-b",
        "title": "Shift merchant cohort B",
        "owner": "release-eng",
        "after": ["prep"],
        "traffic": {"percent": 1, "cohort": "merchant-b"},
        "soak": "10m",
        "gates": ["latency"],
    },
    {
        "id": "tell-merchants",
        "title": "Tell the merchants",
        "owner": "payments-risk",
        "after": ["prep"],
        "duration": "15m",
    },
    {
        "id": "widen-a",
        "title": "Widen merchant cohort A",
        "owner": "release-eng",
        "after": ["prep"],
        "traffic": {"percent": 10, "cohort": "merchant-a"},
        "soak": "10m",
        "gates": ["auth-success"],
    },
    {
        "id": "close",
        "title": "Close the change",
        "owner": "release-eng",
        "after": ["canary-a", "canary-b", "tell-merchants", "widen-a"],
    },
]


def branch_room(checkpoints: list[dict[str, Any]] | None = None) -> WarRoom:
    plan = make_plan(checkpoints or BRANCHES)
    packet = build_packet(
        plan, Facts(), version=1, supersedes=None, reason="plan", acting={}, state=PacketState.AUTHORITATIVE
    )
    room = WarRoom.open(plan, packet).sign_off().start()
    room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    return room


def in_flight(room: WarRoom) -> set[str]:
    return {c for c, p in room.progress.checkpoints.items() if p.state in IN_FLIGHT}


# Every reading passes both gates: once a canary moved traffic its gates are watched, so a shift
# beside it is checked on them too (check before moving), as the scheduler measures them.


def shifted(room: WarRoom) -> dict[str, float]:
    return {s.checkpoint or "": s.percent for s in room.last.of(ShiftTraffic)} if room.last else {}


def test_the_packet_draws_the_branches_side_by_side() -> None:
    room = branch_room()
    starts = {c.id: c.start for c in room.packet.timeline}
    assert starts["canary-a"] == starts["canary-b"] == starts["tell-merchants"]


def test_checkpoints_whose_dependencies_are_done_run_side_by_side() -> None:
    room = branch_room()
    assert in_flight(room) == {"canary-a", "canary-b", "tell-merchants"}
    assert room.cp("tell-merchants") is CheckpointState.ACTIVE
    # Each canary is checked before it moves, each on its own gates.
    room.results("canary-a", minutes(5), auth_success="pass", latency="pass")
    assert shifted(room) == {"canary-a": 1.0}
    room.confirm_shifts(minutes(5))
    room.results("canary-b", minutes(5), auth_success="pass", latency="pass")
    assert shifted(room) == {"canary-b": 1.0}
    room.confirm_shifts(minutes(5))
    assert room.cp("canary-a") is CheckpointState.SOAKING
    assert room.cp("canary-b") is CheckpointState.SOAKING
    assert room.progress.traffic == {"merchant-a": 1.0, "merchant-b": 1.0}


def test_two_traffic_checkpoints_of_one_cohort_never_overlap() -> None:
    room = branch_room()
    # widen-a depends only on prep, but merchant-a is canary-a's until canary-a is done.
    assert room.cp("widen-a") is CheckpointState.PENDING
    room.results("canary-a", minutes(5), auth_success="pass", latency="pass")
    room.confirm_shifts(minutes(5))
    room.results("canary-a", minutes(10), auth_success="pass", latency="pass")
    room.results("canary-a", minutes(11), auth_success="pass", latency="pass")
    assert room.cp("widen-a") is CheckpointState.PENDING
    room.do(Tick(at=minutes(25)))
    assert room.cp("canary-a") is CheckpointState.DONE
    assert room.cp("widen-a") is not CheckpointState.PENDING


def test_each_branch_soaks_and_completes_on_its_own_evidence() -> None:
    room = branch_room()
    room.results("canary-b", minutes(5), auth_success="pass", latency="pass")
    room.confirm_shifts(minutes(5))
    room.results("canary-a", minutes(6), auth_success="pass", latency="pass")
    room.confirm_shifts(minutes(6))
    room.results("canary-b", minutes(7), auth_success="pass", latency="pass")
    room.results("canary-b", minutes(8), auth_success="pass", latency="pass")
    room.do(Tick(at=minutes(15)))  # canary-b's 10 minutes are up; canary-a soaks until 26
    assert room.cp("canary-b") is CheckpointState.DONE
    assert room.cp("canary-a") is CheckpointState.SOAKING
    # The owner of the manual branch says done while the canary still soaks.
    room.do(CheckpointDone(at=minutes(16), checkpoint="tell-merchants", user="U0RISK1"))
    assert room.cp("tell-merchants") is CheckpointState.DONE
    assert room.cp("close") is CheckpointState.PENDING


def test_the_join_starts_only_when_every_branch_is_done() -> None:
    room = branch_room()
    room.results("canary-a", minutes(5), auth_success="pass", latency="pass")
    room.confirm_shifts(minutes(5))
    room.results("canary-b", minutes(5), auth_success="pass", latency="pass")
    room.confirm_shifts(minutes(5))
    for at in (10, 11):
        room.results("canary-a", minutes(at), auth_success="pass", latency="pass")
        room.results("canary-b", minutes(at), auth_success="pass", latency="pass")
    room.do(CheckpointDone(at=minutes(21), checkpoint="tell-merchants", user="U0RISK1"))
    room.do(Tick(at=minutes(26)))
    assert room.cp("widen-a") is CheckpointState.READY  # waiting for its check before moving
    assert room.cp("close") is CheckpointState.PENDING
    room.results("widen-a", minutes(27), auth_success="pass", latency="pass")
    room.confirm_shifts(minutes(27))
    room.results("widen-a", minutes(30), auth_success="pass", latency="pass")
    room.results("widen-a", minutes(31), auth_success="pass", latency="pass")
    room.do(Tick(at=minutes(38)))
    assert room.cp("widen-a") is CheckpointState.DONE
    assert room.cp("close") is CheckpointState.ACTIVE


def test_a_pause_stops_every_branch_and_no_soak_counts_the_time_stopped() -> None:
    room = branch_room()
    room.results("canary-a", minutes(5), auth_success="pass", latency="pass")
    room.confirm_shifts(minutes(5))
    room.results("canary-b", minutes(5), auth_success="pass", latency="pass")
    room.confirm_shifts(minutes(5))
    room.do(Pause(at=minutes(7), user="U0REL1", reason="merchant call"))
    assert room.state() is RunState.PAUSED
    room.do(Resume(at=minutes(17), user="U0REL1"))
    soaks = {c: room.progress.checkpoints[c].soak_until for c in ("canary-a", "canary-b")}
    assert soaks == {"canary-a": minutes(35), "canary-b": minutes(25)}


def test_a_gate_result_for_a_checkpoint_not_in_flight_is_ignored() -> None:
    room = branch_room()
    room.results("widen-a", minutes(6), auth_success="pass", latency="pass")
    assert "gate_results_ignored" in room.ledger_kinds()


@st.composite
def random_branches(draw: st.DrawFn) -> Plan:
    """A random plan: after prep, N checkpoints each depending on a random earlier one, some of
    them traffic steps of one of two cohorts with rising percents."""
    count = draw(st.integers(min_value=2, max_value=7))
    checkpoints: list[dict[str, Any]] = [{"id": "prep", "title": "Prepare", "owner": "release-eng"}]
    percents = {"merchant-a": 0, "merchant-b": 0}
    for i in range(count):
        spec: dict[str, Any] = {
            "id": f"step-{i}",
            "title": f"Step {i}",
            "owner": "release-eng",
            "after": [draw(st.sampled_from([c["id"] for c in checkpoints]))],
            "duration": "5m",
        }
        cohort = draw(st.sampled_from([None, "merchant-a", "merchant-b"]))
        if cohort is not None:
            percents[cohort] += 10
            spec |= {"traffic": {"percent": percents[cohort], "cohort": cohort}, "soak": "5m"}
            spec["gates"] = ["auth-success"]
        checkpoints.append(spec)
    return make_plan(checkpoints)


@settings(max_examples=40, deadline=None)
@given(plan=random_branches(), order=st.randoms(use_true_random=False))
def test_random_branches_run_to_the_end_with_no_two_shifts_of_one_cohort_overlapping(
    plan: Plan, order: Any
) -> None:
    packet = build_packet(
        plan, Facts(), version=1, supersedes=None, reason="plan", acting={}, state=PacketState.AUTHORITATIVE
    )
    room = WarRoom.open(plan, packet).sign_off().start()
    at = minutes(1)
    for _ in range(200):
        if room.state() is RunState.COMPLETED:
            break
        flights = sorted(in_flight(room))
        cohorts = [
            plan.checkpoint(c).traffic.cohort  # type: ignore[union-attr]
            for c in flights
            if plan.checkpoint(c).traffic is not None
        ]
        assert len(cohorts) == len(set(cohorts)), f"one cohort shifted by two checkpoints at once: {flights}"
        for c in flights:
            done = room.progress.checkpoints[c]
            deps = plan.checkpoint(c).after
            assert all(room.cp(a) is CheckpointState.DONE for a in deps)
            if plan.checkpoint(c).gates:
                room.results(c, at, auth_success="pass")
            elif done.state is CheckpointState.ACTIVE and at >= (done.soak_until or at):
                owner = room.roster.acting_user(plan.checkpoint(c).owner)
                room.do(CheckpointDone(at=at, checkpoint=c, user=owner))
            # The control plane confirms whatever shift that step sent out.
            room.confirm_shifts(at)
        at += timedelta(minutes=order.choice([1, 3, 6]))
        room.do(Tick(at=at))
        room.confirm_shifts(at)
    assert room.state() is RunState.COMPLETED
