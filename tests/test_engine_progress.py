"""The run's progress (packets/engine/progress.py) round-trips through plain JSON."""

from __future__ import annotations

import json

from packets.engine.events import (
    HoldOpened,
    Pause,
)
from packets.engine.progress import RunProgress, RunState
from tests.engine_fixtures import (
    WarRoom,
    minutes,
    reach,
)


def test_progress_round_trips_through_plain_json() -> None:
    room = WarRoom.open().canary_running()
    room.results("canary", minutes(6), auth_success="pass", latency="no-data")
    room.do(HoldOpened(at=minutes(7), user="U0SEC1", reason="hold"))
    room.do(Pause(at=minutes(7), user="U0REL1", reason="pause"))
    text = json.dumps(room.progress.as_json())
    assert RunProgress.from_json(json.loads(text)) == room.progress


def test_progress_in_hyper_care_round_trips_through_plain_json() -> None:
    room = reach(RunState.HYPERCARE)
    room.results("hypercare", minutes(30), latency="pass", parity="no-data")
    assert room.progress.hypercare_since is not None and room.progress.hypercare_evidence
    text = json.dumps(room.progress.as_json())
    assert RunProgress.from_json(json.loads(text)) == room.progress
    older = {k: v for k, v in json.loads(text).items() if not k.startswith("hypercare")}
    assert RunProgress.from_json(older).hypercare_since is None  # rows saved before hyper-care existed
