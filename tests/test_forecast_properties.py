"""Properties of the forecast over random acyclic plans run with random delays."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from packets.engine.progress import CheckpointState, RunProgress, RunState
from packets.forecast import Forecast, forecast, forecast_packet
from packets.packet import HoldSource, Packet, PacketState
from packets.plan import Plan
from packets.timeline import Facts, build_packet
from tests.test_timeline_properties import START, plans

relaxed = settings(deadline=None, max_examples=60)


@dataclass(frozen=True)
class Run:
    plan: Plan
    packet: Packet
    progress: RunProgress
    now: datetime


@st.composite
def runs(draw: st.DrawFn) -> Run:
    """A plan run in packet order, each checkpoint starting and ending late by a random delay."""
    plan = draw(plans())
    packet = build_packet(
        plan,
        Facts(),
        version=1,
        supersedes=None,
        reason="approved",
        acting={},
        state=PacketState.AUTHORITATIVE,
    )
    now = START + timedelta(minutes=draw(st.integers(0, 500)))
    progress = RunProgress(
        run_id="r",
        plan_revision=plan.revision,
        packet_version=1,
        state=RunState.RUNNING,
        opened_at=START,
        started_at=START,
    )
    ends: dict[str, datetime] = {}
    by_id = {c.id: c for c in plan.checkpoints}
    for line in packet.timeline:
        cp = by_id[line.id]
        if any(dep not in ends for dep in cp.after):
            continue  # a dependency has not finished: this one is still pending
        ready = max([START, *(ends[d] for d in cp.after)])
        start = ready + timedelta(minutes=draw(st.integers(0, 40)))
        if start > now:
            continue
        end = start + cp.planned_length + timedelta(minutes=draw(st.integers(0, 40)))
        if end <= now:
            ends[cp.id] = end
            progress = progress.with_checkpoint(
                cp.id, state=CheckpointState.DONE, started_at=start, done_at=end
            )
        else:
            progress = progress.with_checkpoint(cp.id, state=CheckpointState.ACTIVE, started_at=start)
    return Run(plan, packet, progress, now)


def seen(run: Run) -> Forecast:
    return forecast(plan=run.plan, packet=run.packet, progress=run.progress, facts=Facts(), now=run.now)


def scheduled(run: Run) -> Packet:
    return forecast_packet(
        plan=run.plan,
        progress=run.progress,
        facts=Facts(),
        now=run.now,
        version=2,
        supersedes=1,
        reason="drift",
        acting={},
    )


@relaxed
@given(runs())
def test_nothing_unfinished_is_forecast_before_now(run: Run) -> None:
    for line in seen(run).checkpoints:
        if line.actual_start is None:
            assert line.start >= run.now, line
        if line.actual_end is None:
            assert line.end >= run.now, line


@relaxed
@given(runs())
def test_actual_times_are_kept_as_they_happened(run: Run) -> None:
    for line in seen(run).checkpoints:
        state = run.progress.checkpoints.get(line.id)
        if state is not None and state.started_at is not None:
            assert line.start == state.started_at
        if state is not None and state.done_at is not None:
            assert line.end == state.done_at


@relaxed
@given(runs())
def test_every_dependency_ends_before_what_waits_on_it_starts(run: Run) -> None:
    packet = scheduled(run)
    result = seen(run)
    for cp in run.plan.checkpoints:
        line = result.of(cp.id)
        if line.actual_start is not None or packet.checkpoint(cp.id).conflict:
            continue  # what started is fact; a conflict-held slot is drawn clamped in its window
        for dep in cp.after:
            if packet.checkpoint(dep).conflict:
                continue
            assert result.of(dep).end <= line.start


@relaxed
@given(runs())
def test_a_protected_window_is_never_silently_overrun(run: Run) -> None:
    packet = scheduled(run)
    for cp in run.plan.checkpoints:
        if not cp.protected or cp.window is None or cp.window.not_after is None:
            continue
        line = packet.checkpoint(cp.id)
        if run.progress.checkpoints.get(cp.id) is not None:
            continue  # it already ran or runs: a forecast cannot move the past
        if line.conflict is None:
            assert line.end <= cp.window.not_after, f"{cp.id} planned past its not_after without a conflict"
            continue
        assert line.held
        assert any(h.checkpoint == cp.id and h.source is HoldSource.CONFLICT for h in packet.holds)


@relaxed
@given(runs())
def test_the_same_run_at_the_same_moment_gives_the_same_packet_hash(run: Run) -> None:
    assert scheduled(run).hash == scheduled(run).hash
    assert seen(run) == seen(run)
