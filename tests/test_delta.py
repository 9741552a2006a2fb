from __future__ import annotations

from datetime import timedelta

from packets.delta import Change, diff
from packets.packet import Packet
from packets.plan import Plan
from packets.timeline import Facts, build_packet
from tests.test_timeline import at, make_plan, story_plan

FIVE_MINUTES = timedelta(minutes=5)


def packet(
    plan: Plan, facts: Facts | None = None, *, version: int, acting: dict[str, str] | None = None
) -> Packet:
    return build_packet(
        plan,
        facts or Facts(),
        version=version,
        supersedes=version - 1 if version > 1 else None,
        reason=f"v{version}",
        acting=acting or {},
    )


def change_of(changes: tuple[Change, ...], checkpoint: str) -> Change:
    return next(c for c in changes if c.checkpoint == checkpoint)


def test_identical_packets_have_no_changes_and_tell_nobody() -> None:
    v1 = packet(story_plan(), version=1)
    delta = diff(v1, packet(story_plan(), version=2), material_shift=FIVE_MINUTES)
    assert delta.changes == ()
    assert delta.notices() == {}
    assert delta.summary() == "no material changes"


def test_the_design_story_moves_four_checkpoints_and_holds_replication() -> None:
    plan = story_plan()
    v2 = packet(plan, version=2)
    v3 = packet(plan, Facts(late={"rollback-validation": at("22:20")}), version=3)
    delta = diff(v2, v3, material_shift=FIVE_MINUTES)
    assert (delta.old_version, delta.new_version) == (2, 3)
    assert [c.checkpoint for c in delta.material_changes] == [
        "rollback-validation",
        "key-replication",
        "canary-a",
        "widen",
        "retire-legacy",
    ]
    assert delta.summary() == "4 checkpoints moved, 1 held, 1 in conflict"
    replication = change_of(delta.changes, "key-replication")
    assert replication.moved_by == timedelta(0)  # held in its window, not moved
    assert replication.hold_added and replication.conflict_added is not None
    validation = change_of(delta.changes, "rollback-validation")
    assert (validation.moved_by, validation.end_moved_by) == (timedelta(0), timedelta(minutes=40))


def test_notices_go_only_to_the_principals_of_material_changes() -> None:
    plan = story_plan()
    v2 = packet(plan, version=2)
    v3 = packet(plan, Facts(late={"rollback-validation": at("22:20")}), version=3)
    notices = diff(v2, v3, material_shift=FIVE_MINUTES).notices()
    assert {user: [c.checkpoint for c in changes] for user, changes in notices.items()} == {
        "U0ENG1": ["rollback-validation", "key-replication", "canary-a"],
        "U0REL1": ["widen", "retire-legacy"],
        "U0RISK1": ["rollback-validation"],
        "U0SEC1": ["key-replication"],
    }


def test_a_shift_below_the_material_threshold_is_recorded_but_told_to_nobody() -> None:
    plan = story_plan()
    delta = diff(
        packet(plan, version=1),
        packet(plan, Facts(late={"comms": at("21:33")}), version=2),
        material_shift=FIVE_MINUTES,
    )
    comms = change_of(delta.changes, "comms")
    assert comms.end_moved_by == timedelta(minutes=3)
    assert not comms.material and not comms.shifted
    assert delta.notices() == {}


def test_a_shift_of_exactly_the_threshold_is_material() -> None:
    plan = story_plan()
    delta = diff(
        packet(plan, version=1),
        packet(plan, Facts(late={"comms": at("21:35")}), version=2),
        material_shift=FIVE_MINUTES,
    )
    assert change_of(delta.changes, "comms").material
    assert delta.summary() == "1 checkpoint moved"


def test_moving_earlier_is_as_material_as_moving_later() -> None:
    plan = story_plan()
    delta = diff(
        packet(plan, version=1),
        packet(plan, Facts(done={"drain-legacy": at("21:10")}), version=2),
        material_shift=FIVE_MINUTES,
    )
    validation = change_of(delta.changes, "rollback-validation")
    assert validation.moved_by == timedelta(minutes=-10)
    assert validation.material


def test_an_owner_change_tells_both_the_old_and_the_new_owner() -> None:
    plan = story_plan()
    delta = diff(
        packet(plan, version=1),
        packet(plan, version=2, acting={"release-authority": "U0REL2"}),
        material_shift=FIVE_MINUTES,
    )
    widen = change_of(delta.changes, "widen")
    assert widen.owner_changed == ("U0REL1", "U0REL2")
    assert widen.material
    assert widen.principals == ("U0REL1", "U0REL2")
    assert set(delta.notices()) == {"U0REL1", "U0REL2"}
    assert delta.summary() == "3 checkpoints with a new owner"


def test_an_observer_change_alone_is_recorded_but_not_material() -> None:
    plan = story_plan()
    delta = diff(
        packet(plan, version=1),
        packet(plan, version=2, acting={"security": "U0SEC2"}),
        material_shift=FIVE_MINUTES,
    )
    replication = change_of(delta.changes, "key-replication")
    assert not replication.material
    assert replication.principals == ("U0ENG1", "U0SEC1", "U0SEC2")
    assert delta.notices() == {}


def test_a_released_hold_is_a_material_change() -> None:
    plan = story_plan()
    delta = diff(
        packet(plan, version=1),
        packet(plan, Facts(released=frozenset({"widen"})), version=2),
        material_shift=FIVE_MINUTES,
    )
    widen = change_of(delta.changes, "widen")
    assert widen.hold_released and not widen.hold_added and widen.material
    assert delta.summary() == "1 checkpoint released"


def test_a_cleared_conflict_is_a_material_change() -> None:
    plan = story_plan()
    late = Facts(late={"rollback-validation": at("22:20")})
    delta = diff(
        packet(plan, late, version=3),
        packet(plan, late.waive("key-replication"), version=4),
        material_shift=FIVE_MINUTES,
    )
    replication = change_of(delta.changes, "key-replication")
    assert replication.conflict_cleared and replication.hold_released
    assert replication.moved_by == timedelta(minutes=40)


def test_a_grown_overrun_counts_as_a_new_conflict() -> None:
    plan = story_plan()
    delta = diff(
        packet(plan, Facts(late={"rollback-validation": at("22:20")}), version=3),
        packet(plan, Facts(late={"rollback-validation": at("22:30")}), version=4),
        material_shift=FIVE_MINUTES,
    )
    replication = change_of(delta.changes, "key-replication")
    assert replication.conflict_added is not None and "50m past its not_after" in replication.conflict_added
    assert not replication.hold_added


def test_only_the_checkpoint_that_overtook_others_is_reordered() -> None:
    plan = make_plan(
        [
            {"id": "a", "title": "A", "owner": "release-eng", "duration": "10m"},
            {"id": "b", "title": "B", "owner": "security", "duration": "10m"},
            {
                "id": "c",
                "title": "C",
                "owner": "payments-risk",
                "window": {"not_before": at("21:02").isoformat()},
            },
            {
                "id": "d",
                "title": "D",
                "owner": "release-authority",
                "window": {"not_before": at("21:03").isoformat()},
            },
        ]
    )
    v1 = packet(plan, version=1)
    v2 = packet(plan, Facts(started={"a": at("21:04")}), version=2)
    assert [c.id for c in v1.timeline] == ["a", "b", "c", "d"]
    assert [c.id for c in v2.timeline] == ["b", "c", "d", "a"]
    delta = diff(v1, v2, material_shift=FIVE_MINUTES)
    a = change_of(delta.changes, "a")
    assert a.reordered and a.material and not a.shifted  # 4 minutes, but the order changed
    assert [c.checkpoint for c in delta.changes] == ["a"]
    assert set(delta.notices()) == {"U0ENG1"}


def test_checkpoints_added_or_removed_between_versions_are_material() -> None:
    old_plan = make_plan(
        [
            {"id": "keep", "title": "Keep", "owner": "release-eng", "duration": "10m"},
            {"id": "gone", "title": "Gone", "owner": "security", "duration": "10m"},
        ]
    )
    new_plan = make_plan(
        [
            {"id": "keep", "title": "Keep", "owner": "release-eng", "duration": "10m"},
            {"id": "new", "title": "New", "owner": "payments-risk", "duration": "10m", "protected": True},
        ]
    )
    delta = diff(packet(old_plan, version=1), packet(new_plan, version=2), material_shift=FIVE_MINUTES)
    assert [(c.checkpoint, c.added, c.removed) for c in delta.changes] == [
        ("new", True, False),
        ("gone", False, True),
    ]
    assert change_of(delta.changes, "new").hold_added
    assert set(delta.notices()) == {"U0RISK1", "U0SEC1"}
    assert delta.summary() == "1 checkpoint added, 1 removed, 1 held"


def test_a_material_shift_of_zero_still_ignores_checkpoints_that_did_not_move() -> None:
    plan = story_plan()
    delta = diff(
        packet(plan, version=1),
        packet(plan, Facts(late={"comms": at("21:31")}), version=2),
        material_shift=timedelta(0),
    )
    assert [c.checkpoint for c in delta.material_changes] == ["comms"]
