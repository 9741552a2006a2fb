"""Traffic shifts and rollbacks (packets/engine/traffic.py): actuation answers and retries."""

from __future__ import annotations

import pytest

from packets.engine.effects import (
    LedgerKind,
    ShiftTraffic,
)
from packets.engine.errors import IllegalTransition
from packets.engine.events import (
    ActuationFailed,
    ActuationSucceeded,
    CheckpointDone,
    HoldReleased,
    RollbackRequested,
    Tick,
)
from packets.engine.progress import CheckpointState
from tests.engine_fixtures import (
    WarRoom,
    minutes,
)


def test_a_failed_actuation_never_counts_as_done() -> None:
    room = WarRoom.open().sign_off().start()
    room.do(CheckpointDone(at=minutes(5), checkpoint="prep", user="U0ENG1"))
    room.results("canary", minutes(10), auth_success="pass", latency="pass")
    room.results("canary", minutes(11), auth_success="pass", latency="pass")
    room.do(
        ActuationFailed(at=minutes(12), checkpoint="canary", cohort="merchant-a", percent=1, detail="refused")
    )
    room.do(Tick(at=minutes(60)))
    assert room.cp("canary") is CheckpointState.HELD
    # A late success for the refused command is a stale report: on record, changes nothing.
    late = room.do(ActuationSucceeded(at=minutes(61), checkpoint="canary", cohort="merchant-a", percent=1))
    assert room.ledger_kinds(late) == [LedgerKind.ACTUATION_REPORT_IGNORED]
    assert room.cp("canary") is CheckpointState.HELD


def test_a_retry_after_a_cohort_rollback_waits_until_its_failing_gate_passes() -> None:
    room = WarRoom.open().canary_running()
    room.results("canary", minutes(6), auth_success="fail", latency="pass")
    (hold,) = room.open_hold_ids()
    released = room.do(HoldReleased(at=minutes(7), hold_id=hold, user="U0REL1"))
    assert released.of(ShiftTraffic) == ()
    assert room.cp("canary") is CheckpointState.READY
    again = room.results("canary", minutes(8), auth_success="pass", latency="pass")
    (shift,) = again.of(ShiftTraffic)
    assert shift.percent == 1
    assert room.progress.checkpoints["canary"].evidence == {}  # a fresh streak for the new attempt
    assert room.progress.checkpoints["canary"].attempt == 2


def test_a_cohort_rollback_with_no_cohort_in_flight_is_illegal() -> None:
    room = WarRoom.open().sign_off().start()
    with pytest.raises(IllegalTransition, match="no cohort is in flight at prep"):
        room.do(RollbackRequested(at=minutes(1), user="U0REL1", scope="cohort", reason="x"))
