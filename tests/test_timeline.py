from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from packets.packet import HoldSource, Packet, PacketState
from packets.plan import CheckpointWindow, Plan
from packets.timeline import Facts, TimelineError, build_packet

START = datetime.fromisoformat("2026-11-24T21:00:00-05:00")


def at(clock: str) -> datetime:
    """A time on the cutover evening: at("21:40"); after midnight belongs to the next day."""
    hours, minutes = (int(part) for part in clock.split(":"))
    day = START.date() if hours >= 12 else START.date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=START.tzinfo)


def make_plan(checkpoints: list[dict[str, Any]], **fields: Any) -> Plan:
    data: dict[str, Any] = {
        "plan": "payments-tokenization-cutover",
        "title": "Card-token lookups move to the tokenization service",
        "channel": "C0WARROOM",
        "window": {"start": START.isoformat(), "end": at("01:00").isoformat()},
        "roles": {
            "release-authority": {"primary": "U0REL1", "delegates": ["U0REL2"]},
            "release-eng": {"primary": "U0ENG1", "delegates": ["U0ENG2"]},
            "payments-risk": {"primary": "U0RISK1"},
            "security": {"primary": "U0SEC1", "delegates": ["U0SEC2"]},
        },
        "authority": {
            "signoff": ["release-authority", "payments-risk"],
            "adopt_packets": ["release-authority"],
            "change_delegates": ["release-authority"],
            "start_and_rollback": ["release-authority", "release-eng"],
        },
        "checkpoints": checkpoints,
        **fields,
    }
    return Plan.model_validate(data)


def story_plan() -> Plan:
    """The design's story: rollback validation runs late and pushes key replication past 22:00."""
    return make_plan(
        [
            {
                "id": "drain-legacy",
                "title": "Drain legacy writers",
                "owner": "release-eng",
                "duration": "20m",
            },
            {
                "id": "rollback-validation",
                "title": "Rollback path validated",
                "owner": "release-eng",
                "observers": ["payments-risk"],
                "duration": "20m",
                "after": ["drain-legacy"],
            },
            {
                "id": "key-replication",
                "title": "Key replication confirmed",
                "owner": "release-eng",
                "observers": ["security"],
                "duration": "20m",
                "protected": True,
                "window": {"not_after": at("22:00").isoformat()},
                "after": ["rollback-validation"],
            },
            {
                "id": "canary-a",
                "title": "Shift merchant cohort A",
                "owner": "release-eng",
                "after": ["key-replication"],
                "traffic": {"percent": 1, "cohort": "merchant-a"},
                "soak": "20m",
            },
            {
                "id": "widen",
                "title": "Release to widen beyond cohort A",
                "owner": "release-authority",
                "after": ["canary-a"],
                "hold": {"release_by": ["release-authority"]},
            },
            {
                "id": "retire-legacy",
                "title": "Retire the legacy vault path",
                "owner": "release-authority",
                "after": ["widen"],
                "protected": True,
                "hold": {"release_by": ["release-authority", "payments-risk"], "mode": "all"},
            },
            {
                "id": "comms",
                "title": "Status page note",
                "owner": "release-authority",
                "duration": "10m",
                "after": ["drain-legacy"],
            },
        ]
    )


def build(plan: Plan, facts: Facts | None = None, *, acting: dict[str, str] | None = None) -> Packet:
    return build_packet(plan, facts or Facts(), version=2, supersedes=1, reason="test", acting=acting or {})


def times(packet: Packet, checkpoint: str) -> tuple[str, str]:
    line = packet.checkpoint(checkpoint)
    return line.start.strftime("%H:%M"), line.end.strftime("%H:%M")


# Scheduling from the plan alone


def test_checkpoints_start_at_the_window_and_follow_their_dependencies() -> None:
    packet = build(story_plan())
    assert times(packet, "drain-legacy") == ("21:00", "21:20")
    assert times(packet, "rollback-validation") == ("21:20", "21:40")
    assert times(packet, "key-replication") == ("21:40", "22:00")
    assert times(packet, "canary-a") == ("22:00", "22:20")  # soak counts on the timeline
    assert times(packet, "widen") == ("22:20", "22:20")
    assert times(packet, "comms") == ("21:20", "21:30")


def test_the_timeline_is_ordered_by_start_with_ties_in_plan_order() -> None:
    packet = build(story_plan())
    assert [c.id for c in packet.timeline] == [
        "drain-legacy",
        "rollback-validation",
        "comms",
        "key-replication",
        "canary-a",
        "widen",
        "retire-legacy",
    ]


def test_a_checkpoint_waits_for_the_later_of_its_dependencies() -> None:
    plan = make_plan(
        [
            {"id": "a", "title": "A", "owner": "release-eng", "duration": "10m"},
            {"id": "b", "title": "B", "owner": "release-eng", "duration": "30m"},
            {"id": "c", "title": "C", "owner": "release-eng", "duration": "5m", "after": ["a", "b"]},
        ]
    )
    assert times(build(plan), "c") == ("21:30", "21:35")


def test_a_checkpoint_does_not_start_before_its_not_before() -> None:
    plan = make_plan(
        [
            {
                "id": "dns",
                "title": "DNS flip",
                "owner": "release-eng",
                "duration": "5m",
                "window": {"not_before": at("22:30").isoformat()},
            }
        ]
    )
    assert times(build(plan), "dns") == ("22:30", "22:35")


def test_a_plan_written_out_of_order_is_scheduled_in_dependency_order() -> None:
    plan = make_plan(
        [
            {"id": "second", "title": "Second", "owner": "release-eng", "duration": "5m", "after": ["first"]},
            {"id": "first", "title": "First", "owner": "release-eng", "duration": "10m"},
        ]
    )
    packet = build(plan)
    assert [c.id for c in packet.timeline] == ["first", "second"]
    assert times(packet, "second") == ("21:10", "21:15")


def test_owners_and_observers_resolve_to_the_acting_users() -> None:
    packet = build(story_plan(), acting={"release-eng": "U0ENG2", "security": "U0SEC2"})
    line = packet.checkpoint("key-replication")
    assert (line.owner_role, line.owner_user) == ("release-eng", "U0ENG2")
    assert line.observer_roles == ("security",)
    assert line.observer_users == ("U0SEC2",)
    assert packet.checkpoint("widen").owner_user == "U0REL1"


def test_the_packet_carries_version_reason_revision_and_state() -> None:
    plan = story_plan()
    packet = build_packet(
        plan,
        Facts(),
        version=1,
        supersedes=None,
        reason="plan adopted",
        acting={},
        state=PacketState.AUTHORITATIVE,
    )
    assert (packet.version, packet.supersedes, packet.reason) == (1, None, "plan adopted")
    assert packet.plan_revision == plan.revision
    assert packet.state is PacketState.AUTHORITATIVE


def test_a_known_plan_revision_is_used_as_given() -> None:
    packet = build_packet(
        story_plan(), Facts(), version=1, supersedes=None, reason="r", acting={}, plan_revision="abc123"
    )
    assert packet.plan_revision == "abc123"


# Plan holds


def test_hold_checkpoints_and_protected_checkpoints_are_held_by_the_plan() -> None:
    packet = build(story_plan())
    held = {c.id for c in packet.timeline if c.held}
    assert held == {"key-replication", "widen", "retire-legacy"}
    register = {(h.source, h.checkpoint): h for h in packet.holds}
    assert set(register) == {("plan", "key-replication"), ("plan", "widen"), ("plan", "retire-legacy")}
    assert all(h.source is HoldSource.PLAN for h in packet.holds)
    assert register[("plan", "retire-legacy")].release_by == ("release-authority", "payments-risk")
    assert register[("plan", "retire-legacy")].mode == "all"
    # A protected checkpoint without a `hold:` is released by whoever adopts packets.
    assert register[("plan", "key-replication")].release_by == ("release-authority",)


def test_a_released_plan_hold_is_no_longer_held() -> None:
    packet = build(story_plan(), Facts(released=frozenset({"key-replication"})))
    assert not packet.checkpoint("key-replication").held
    assert ("plan", "key-replication") not in {(h.source, h.checkpoint) for h in packet.holds}


def test_dependents_name_every_held_checkpoint_upstream_in_waits_on() -> None:
    packet = build(story_plan())
    assert packet.checkpoint("canary-a").waits_on == ("key-replication",)
    assert packet.checkpoint("widen").waits_on == ("key-replication",)
    assert packet.checkpoint("retire-legacy").waits_on == ("key-replication", "widen")
    assert packet.checkpoint("comms").waits_on == ()


def test_a_started_checkpoint_was_let_through_its_hold() -> None:
    facts = Facts(started={"key-replication": at("21:40")})
    packet = build(story_plan(), facts)
    assert not packet.checkpoint("key-replication").held
    assert packet.checkpoint("key-replication").status == "active"
    assert packet.checkpoint("canary-a").waits_on == ()


def test_a_protected_checkpoint_started_too_late_to_fit_is_held_in_conflict_from_its_real_start() -> None:
    # It is running, so its start is not rewritten; the hold stops its dependents until the
    # release authority accepts the overrun (waives it) or rolls back.
    packet = build(story_plan(), Facts(started={"key-replication": at("21:45")}))
    line = packet.checkpoint("key-replication")
    assert times(packet, "key-replication") == ("21:45", "22:00")
    assert line.held and line.conflict is not None
    assert "because it started at 21:45 and takes 20m" in line.conflict
    assert packet.checkpoint("canary-a").waits_on == ("key-replication",)


# Facts


def test_a_late_report_moves_the_checkpoint_end_and_its_dependents() -> None:
    plan = story_plan()
    packet = build(plan, Facts(late={"canary-a": at("22:50")}))
    assert times(packet, "canary-a") == ("22:00", "22:50")
    assert times(packet, "widen") == ("22:50", "22:50")
    assert packet.checkpoint("canary-a").status == "late"


def test_a_late_report_never_makes_a_checkpoint_shorter_than_planned() -> None:
    packet = build(story_plan(), Facts(late={"canary-a": at("22:05")}))
    assert times(packet, "canary-a") == ("22:00", "22:20")


def test_a_done_checkpoint_ends_when_it_was_done_and_its_dependents_follow() -> None:
    facts = Facts(done={"drain-legacy": at("21:12")})
    packet = build(story_plan(), facts)
    assert times(packet, "drain-legacy") == ("21:00", "21:12")
    assert packet.checkpoint("drain-legacy").status == "done"
    assert times(packet, "rollback-validation") == ("21:12", "21:32")


def test_a_started_checkpoint_keeps_its_real_start() -> None:
    facts = Facts(started={"drain-legacy": at("21:05")})
    assert times(build(story_plan(), facts), "drain-legacy") == ("21:05", "21:25")


def test_a_moved_window_replaces_the_plan_window() -> None:
    facts = Facts(windows={"comms": CheckpointWindow(not_before=at("23:00"))})
    assert times(build(story_plan(), facts), "comms") == ("23:00", "23:10")


def test_fact_times_in_another_offset_give_the_same_packet() -> None:
    plan = story_plan()
    local = Facts(late={"canary-a": at("22:50")})
    utc = Facts(late={"canary-a": at("22:50").astimezone(UTC)})
    assert build(plan, local).hash == build(plan, utc).hash
    assert build(plan, utc).checkpoint("canary-a").end.utcoffset() == timedelta(hours=-5)


# Protected windows


def test_a_protected_checkpoint_pushed_past_its_boundary_is_held_in_conflict_not_moved() -> None:
    # The design's story: rollback validation will finish 40 minutes late.
    packet = build(story_plan(), Facts(late={"rollback-validation": at("22:20")}))
    replication = packet.checkpoint("key-replication")
    assert replication.held
    assert times(packet, "key-replication") == ("21:40", "22:00")  # clamped inside its window
    assert replication.conflict == (
        "needs until 22:40, 40m past its not_after 22:00, because it comes after rollback-validation, "
        "which ends 22:20, and takes 20m; protected, so held inside its window instead of moved past it"
    )
    conflict_holds = [h for h in packet.holds if h.source is HoldSource.CONFLICT]
    assert [(h.source, h.checkpoint, h.release_by) for h in conflict_holds] == [
        ("conflict", "key-replication", ("release-authority",))
    ]
    assert conflict_holds[0].reason.startswith("Key replication confirmed needs until 22:40")


def test_dependents_of_a_conflict_start_after_its_real_end_and_wait_on_it() -> None:
    packet = build(story_plan(), Facts(late={"rollback-validation": at("22:20")}))
    assert times(packet, "canary-a") == ("22:40", "23:00")
    assert packet.checkpoint("canary-a").waits_on == ("key-replication",)
    assert packet.checkpoint("retire-legacy").waits_on == ("key-replication", "widen")


def test_a_released_protected_checkpoint_in_conflict_is_still_held_by_the_conflict() -> None:
    facts = Facts(late={"rollback-validation": at("22:20")}, released=frozenset({"key-replication"}))
    packet = build(story_plan(), facts)
    assert packet.checkpoint("key-replication").held
    assert [h.source for h in packet.holds if h.checkpoint == "key-replication"] == ["conflict"]


def test_a_protected_checkpoint_reported_late_past_its_boundary_is_in_conflict() -> None:
    packet = build(story_plan(), Facts(late={"key-replication": at("22:15")}))
    line = packet.checkpoint("key-replication")
    assert line.conflict is not None
    assert "because it was reported late until 22:15" in line.conflict
    assert times(packet, "canary-a") == ("22:15", "22:35")


def test_a_window_too_narrow_for_the_work_is_a_conflict_from_the_start() -> None:
    plan = make_plan(
        [
            {
                "id": "swap",
                "title": "Swap keys",
                "owner": "security",
                "duration": "30m",
                "protected": True,
                "window": {"not_before": at("21:50").isoformat(), "not_after": at("22:00").isoformat()},
            }
        ]
    )
    line = build(plan).checkpoint("swap")
    assert line.conflict is not None and "takes 30m from 21:50" in line.conflict
    assert times(build(plan), "swap") == ("21:50", "22:00")


def test_an_unprotected_checkpoint_past_its_not_after_is_moved_with_a_note_and_no_hold() -> None:
    plan = make_plan(
        [
            {"id": "prep", "title": "Prep", "owner": "release-eng", "duration": "50m"},
            {
                "id": "notify",
                "title": "Notify merchants",
                "owner": "release-authority",
                "duration": "15m",
                "after": ["prep"],
                "window": {"not_after": at("22:00").isoformat()},
            },
        ]
    )
    packet = build(plan)
    line = packet.checkpoint("notify")
    assert times(packet, "notify") == ("21:50", "22:05")
    assert line.conflict is not None and line.conflict.endswith("not protected, so moved past it")
    assert "5m past its not_after 22:00" in line.conflict
    assert not line.held
    assert packet.holds == ()


def test_a_waived_conflict_is_scheduled_at_its_computed_time_without_a_conflict_hold() -> None:
    facts = Facts(late={"rollback-validation": at("22:20")}, waived=frozenset({"key-replication"}))
    packet = build(story_plan(), facts)
    line = packet.checkpoint("key-replication")
    assert times(packet, "key-replication") == ("22:20", "22:40")
    assert line.conflict is None
    assert [h.source for h in packet.holds if h.checkpoint == "key-replication"] == ["plan"]


def test_a_done_protected_checkpoint_is_history_not_a_conflict() -> None:
    facts = Facts(done={"key-replication": at("22:10")})
    line = build(story_plan(), facts).checkpoint("key-replication")
    assert (line.conflict, line.held, line.status) == (None, False, "done")


def test_a_conflict_past_midnight_names_the_date() -> None:
    plan = make_plan(
        [
            {"id": "backfill", "title": "Backfill", "owner": "release-eng", "duration": "3h30m"},
            {
                "id": "seal",
                "title": "Seal",
                "owner": "security",
                "duration": "10m",
                "protected": True,
                "after": ["backfill"],
                "window": {"not_after": at("00:15").isoformat()},
            },
        ]
    )
    line = build(plan).checkpoint("seal")
    assert line.conflict is not None
    assert "needs until 00:40 on 2026-11-25, 25m past its not_after 00:15 on 2026-11-25" in line.conflict


# Determinism and bad input


def test_the_same_inputs_give_the_same_packet_hash() -> None:
    facts = Facts(late={"rollback-validation": at("22:20"), "comms": at("21:45")})
    same_facts_other_order = Facts(late={"comms": at("21:45"), "rollback-validation": at("22:20")})
    assert build(story_plan(), facts).hash == build(story_plan(), same_facts_other_order).hash


def test_a_different_fact_gives_a_different_hash() -> None:
    assert build(story_plan()).hash != build(story_plan(), Facts(late={"comms": at("21:45")})).hash


def test_a_cycle_in_after_is_refused_with_the_checkpoints_in_it() -> None:
    plan = make_plan(
        [
            {"id": "a", "title": "A", "owner": "release-eng", "after": ["b"]},
            {"id": "b", "title": "B", "owner": "release-eng", "after": ["a"]},
            {"id": "c", "title": "C", "owner": "release-eng"},
        ]
    )
    with pytest.raises(TimelineError, match=r"cycle: a, b$"):
        build(plan)


def test_a_dependency_on_an_unknown_checkpoint_is_refused() -> None:
    plan = make_plan([{"id": "a", "title": "A", "owner": "release-eng", "after": ["ghost"]}])
    with pytest.raises(TimelineError, match="a comes after ghost"):
        build(plan)


def test_facts_about_an_unknown_checkpoint_are_refused() -> None:
    with pytest.raises(TimelineError, match="ghost"):
        build(story_plan(), Facts(late={"ghost": at("22:00")}))


def test_facts_round_trip_through_json() -> None:
    facts = (
        Facts()
        .report_late("canary-a", at("22:50"))
        .mark_started("drain-legacy", at("21:01"))
        .mark_done("drain-legacy", at("21:19"))
        .move_window("comms", CheckpointWindow(not_before=at("23:00")))
        .waive("key-replication")
        .release("widen")
    )
    assert Facts.from_json(facts.as_json()) == facts
    assert build(story_plan(), Facts.from_json(facts.as_json())).hash == build(story_plan(), facts).hash
