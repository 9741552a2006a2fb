"""Sign-off, start and abort: the rules of the rows themselves (packets/engine/rows.py)."""

from __future__ import annotations

import pytest

from packets.authority import Refused, Roster
from packets.engine.errors import IllegalTransition
from packets.engine.events import (
    Abort,
    SignoffGiven,
    Start,
)
from packets.engine.progress import RunState
from tests.engine_fixtures import (
    T0,
    WarRoom,
    make_plan,
    minutes,
)


def test_a_run_cannot_start_until_every_signoff_role_signed_the_exact_revision() -> None:
    room = WarRoom.open()
    with pytest.raises(IllegalTransition, match=r"payments-risk \(acting: U0RISK1\)"):
        room.do(Start(at=T0, user="U0REL1"))
    room.do(SignoffGiven(at=T0, user="U0REL1", role="release-authority", revision=room.plan.revision))
    with pytest.raises(Refused, match="inherits no sign-off"):
        room.do(SignoffGiven(at=T0, user="U0RISK1", role="payments-risk", revision="0" * 64))
    with pytest.raises(IllegalTransition):
        room.do(Start(at=T0, user="U0REL1"))
    room.do(SignoffGiven(at=T0, user="U0RISK1", role="payments-risk", revision=room.plan.revision))
    room.do(Start(at=T0, user="U0REL1"))
    assert room.progress.state is RunState.RUNNING


def test_a_signoff_by_someone_not_acting_for_the_role_is_refused() -> None:
    room = WarRoom.open()
    with pytest.raises(Refused, match="U0REL1 acts for it"):
        room.do(SignoffGiven(at=T0, user="U0REL2", role="release-authority", revision=room.plan.revision))
    with pytest.raises(Refused, match="does not sign off"):
        room.do(SignoffGiven(at=T0, user="U0SEC1", role="security", revision=room.plan.revision))


def test_one_person_acting_for_two_signoff_roles_signs_off_once() -> None:
    roster = Roster(make_plan().roles)
    room = WarRoom.open()
    room.roster = roster.switch(
        by_user="U0REL1", role="release-authority", to_user="U0REL2", change_roles=["release-authority"]
    )
    room.do(SignoffGiven(at=T0, user="U0REL2", role="release-authority", revision=room.plan.revision))
    with pytest.raises(Refused, match="already signed off"):
        room.do(SignoffGiven(at=T0, user="U0REL2", role="release-authority", revision=room.plan.revision))


def test_only_a_start_role_may_start() -> None:
    room = WarRoom.open().sign_off()
    with pytest.raises(
        Refused, match=r"release-authority \(acting: U0REL1\) or release-eng \(acting: U0ENG1\)"
    ):
        room.do(Start(at=T0, user="U0RISK1"))
    assert room.progress.state is RunState.READY


def test_an_abort_with_traffic_on_the_new_path_is_illegal() -> None:
    room = WarRoom.open().canary_running()
    with pytest.raises(IllegalTransition, match="roll back instead"):
        room.do(Abort(at=minutes(8), user="U0REL1", reason="stop"))
