"""Recovery is deliberate (packets/engine/advance.py, `settle`): time stopped does not count as
soak, and after a resume or an unfreeze nothing moves on passes gathered before it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packets.engine.events import (
    CheckpointDone,
    Freeze,
    HoldOpened,
    HoldReleased,
    Pause,
    Resume,
    Tick,
    Unfreeze,
)
from packets.engine.progress import CheckpointState, RunState
from tests.engine_fixtures import HYPERCARE_CUTOVER, WarRoom, make_plan, minutes


def _stop(room: WarRoom, how: str, at: float) -> None:
    if how == "paused":
        room.do(Pause(at=minutes(at), user="U0REL1", reason="dashboards"))
    elif how == "frozen":
        room.do(Freeze(at=minutes(at), user="U0REL1", reason="fallback"))
    else:
        room.do(HoldOpened(at=minutes(at), user="U0SEC1", reason="odd error rate"))


def _start_again(room: WarRoom, how: str, at: float) -> None:
    if how == "paused":
        room.do(Resume(at=minutes(at), user="U0REL1"))
    elif how == "frozen":
        room.do(Unfreeze(at=minutes(at), user="U0REL1"))
    else:
        (hold,) = room.open_hold_ids()
        room.do(HoldReleased(at=minutes(at), hold_id=hold, user="U0REL1"))


@pytest.mark.parametrize("how", ["paused", "frozen", "held"])
def test_time_stopped_does_not_count_as_soak_and_the_soak_resumes_where_it_stopped(how: str) -> None:
    room = WarRoom.open().canary_running()  # 1 % at minute 5, soaking until minute 25
    room.results("canary", minutes(10), auth_success="pass", latency="pass")
    _stop(room, how, 12)
    _start_again(room, how, 42)  # 30 minutes stopped: 13 minutes of soak were left
    assert room.progress.checkpoints["canary"].soak_until == minutes(55)
    room.results("canary", minutes(43), auth_success="pass", latency="pass")
    room.results("canary", minutes(44), auth_success="pass", latency="pass")
    room.do(Tick(at=minutes(54)))
    assert room.cp("canary") is CheckpointState.SOAKING
    room.do(Tick(at=minutes(55)))
    assert room.cp("canary") is CheckpointState.DONE


@pytest.mark.parametrize("how", ["paused", "frozen"])
def test_after_a_resume_or_unfreeze_the_stage_does_not_complete_on_passes_gathered_before_it(
    how: str,
) -> None:
    room = WarRoom.open().canary_running()
    room.results("canary", minutes(10), auth_success="pass", latency="pass")
    room.results("canary", minutes(11), auth_success="pass", latency="pass")
    _stop(room, how, 24)  # a minute of soak left, the passes all gathered
    _start_again(room, how, 60)
    assert room.state() is RunState.RUNNING
    room.do(Tick(at=minutes(61)))  # the soak ran out again, but on passes from before the stop
    assert room.cp("canary") is CheckpointState.SOAKING
    room.results("canary", minutes(62), auth_success="pass", latency="pass")
    assert room.cp("canary") is CheckpointState.SOAKING
    room.results("canary", minutes(63), auth_success="pass", latency="pass")
    assert room.cp("canary") is CheckpointState.DONE


@pytest.mark.parametrize("how", ["paused", "frozen"])
def test_after_a_resume_or_unfreeze_no_traffic_step_goes_out_until_fresh_passes_were_gathered(
    how: str,
) -> None:
    room = WarRoom.open(make_plan(HYPERCARE_CUTOVER)).sign_off().start()
    room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    room.results("canary", minutes(5), auth_success="pass", latency="pass")
    room.confirm_shifts(minutes(5))  # 25 %, soaking until minute 15
    room.results("canary", minutes(6), auth_success="pass", latency="pass")
    room.results("canary", minutes(7), auth_success="pass", latency="pass")
    _stop(room, how, 14)
    _start_again(room, how, 40)  # soak to minute 41; 100 % must wait for passes after minute 40
    room.results("canary", minutes(41), auth_success="pass", latency="pass")
    moved = room.results("canary", minutes(42), auth_success="pass", latency="pass")
    assert room.cp("canary") is CheckpointState.DONE
    assert room.progress.traffic["merchant-a"] == 100
    assert moved.progress.checkpoints["full"].started_at == minutes(42)


def test_a_resume_with_the_soak_already_over_and_the_passes_old_shifts_nothing_in_the_same_tick() -> None:
    room = WarRoom.open(make_plan(HYPERCARE_CUTOVER)).sign_off().start()
    room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    room.results("canary", minutes(5), auth_success="pass", latency="pass")
    room.confirm_shifts(minutes(5))
    room.results("canary", minutes(6), auth_success="pass", latency="pass")
    room.results("canary", minutes(7), auth_success="pass", latency="pass")
    room.do(Tick(at=minutes(14)))
    room.do(Pause(at=minutes(16), user="U0REL1", reason="wait"))  # soak over, the tick came late
    resumed = room.do(Resume(at=minutes(40), user="U0REL1"))
    assert (
        room.progress.traffic["merchant-a"] == 25 and not resumed.progress.traffic_history["merchant-a"][1:]
    )


@settings(max_examples=60, deadline=None)
@given(
    stops=st.lists(
        st.tuples(st.sampled_from(["paused", "frozen", "held"]), st.integers(1, 30), st.integers(1, 40)),
        max_size=4,
    )
)
def test_a_stage_never_completes_before_its_soak_plus_every_minute_stopped(
    stops: list[tuple[str, int, int]],
) -> None:
    """However often the run stops while the canary soaks, the canary completes no earlier than
    its start plus its soak plus the minutes stopped, and only on passes after the last restart."""
    room = WarRoom.open().canary_running()
    at, stopped = 5, 0
    for how, running, length in stops:
        at += running
        if at >= 25 + stopped:
            break
        room.results("canary", minutes(at - 0.5), auth_success="pass", latency="pass")
        _stop(room, how, at)
        _start_again(room, how, at + length)
        at += length
        stopped += length
    soak_end = minutes(25 + stopped)
    assert room.progress.checkpoints["canary"].soak_until == soak_end
    room.do(Tick(at=soak_end - timedelta(seconds=1)))
    assert room.cp("canary") is CheckpointState.SOAKING
    room.results("canary", soak_end + timedelta(minutes=1), auth_success="pass", latency="pass")
    room.results("canary", soak_end + timedelta(minutes=2), auth_success="pass", latency="pass")
    assert room.cp("canary") is CheckpointState.DONE
