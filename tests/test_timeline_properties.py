"""Properties of the resequencer and of deltas over random acyclic plans and random late reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packets.delta import diff
from packets.packet import HoldSource, Packet
from packets.plan import Plan
from packets.timeline import Facts, build_packet

START = datetime.fromisoformat("2026-11-24T21:00:00-05:00")
ROLES = {
    "release-authority": {"primary": "U0REL1", "delegates": ["U0REL2"]},
    "release-eng": {"primary": "U0ENG1", "delegates": ["U0ENG2"]},
    "payments-risk": {"primary": "U0RISK1"},
    "security": {"primary": "U0SEC1", "delegates": ["U0SEC2"]},
}
ROLE_NAMES = sorted(ROLES)

relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def minutes(n: int) -> str:
    return (START + timedelta(minutes=n)).isoformat()


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    """Acyclic plans whose list order is shuffled, so they are not always written in order."""
    size = draw(st.integers(min_value=1, max_value=16))
    positions = draw(st.permutations(range(size)))
    checkpoints: list[dict[str, Any]] = [{} for _ in range(size)]
    for k in range(size):
        # Dependencies only on checkpoints generated earlier: acyclic by construction.
        after = draw(st.lists(st.integers(0, k - 1), max_size=3, unique=True)) if k else []
        checkpoint: dict[str, Any] = {
            "id": f"cp-{k}",
            "title": f"Checkpoint {k}",
            "owner": draw(st.sampled_from(ROLE_NAMES)),
            "observers": draw(st.lists(st.sampled_from(ROLE_NAMES), max_size=2, unique=True)),
            "duration": draw(st.integers(0, 60)),
            "soak": draw(st.sampled_from([0, 0, 5, 20])),
            "after": [f"cp-{j}" for j in after],
            "protected": draw(st.booleans()),
        }
        not_before = draw(st.none() | st.integers(0, 180))
        not_after = draw(st.none() | st.integers(0, 300))
        if not_before is not None or not_after is not None:
            checkpoint["window"] = {
                "not_before": None if not_before is None else minutes(not_before),
                "not_after": None if not_after is None else minutes(not_after),
            }
        if draw(st.integers(0, 4)) == 0:
            release_by = draw(st.lists(st.sampled_from(ROLE_NAMES), min_size=1, max_size=2, unique=True))
            checkpoint["hold"] = {"release_by": release_by, "mode": draw(st.sampled_from(["any", "all"]))}
        checkpoints[positions[k]] = checkpoint
    return Plan.model_validate(
        {
            "plan": "random-plan",
            "title": "Random plan",
            "channel": "C0WARROOM",
            "window": {"start": START.isoformat(), "end": minutes(600)},
            "roles": ROLES,
            "authority": {
                "signoff": ["release-authority"],
                "adopt_packets": ["release-authority"],
                "change_delegates": ["release-authority"],
                "start_and_rollback": ["release-eng"],
            },
            "checkpoints": checkpoints,
        }
    )


@st.composite
def facts_for(draw: st.DrawFn, plan: Plan) -> Facts:
    ids = [c.id for c in plan.checkpoints]
    late_ids = draw(st.lists(st.sampled_from(ids), max_size=4, unique=True))
    late = {cid: START + timedelta(minutes=draw(st.integers(0, 400))) for cid in late_ids}
    waived = draw(st.frozensets(st.sampled_from(ids), max_size=2))
    released = draw(st.frozensets(st.sampled_from(ids), max_size=3))
    return Facts(late=late, waived=waived, released=released)


@st.composite
def acting_maps(draw: st.DrawFn) -> dict[str, str]:
    acting: dict[str, str] = {}
    for role, spec in ROLES.items():
        members = [spec["primary"], *spec.get("delegates", [])]
        acting[role] = draw(st.sampled_from(members))
    return acting


@dataclass(frozen=True)
class Case:
    plan: Plan
    facts: Facts
    acting: dict[str, str]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    plan = draw(plans())
    return Case(plan, draw(facts_for(plan)), draw(acting_maps()))


def build(case: Case, *, version: int = 2) -> Packet:
    return build_packet(
        case.plan, case.facts, version=version, supersedes=version - 1, reason="property", acting=case.acting
    )


def conflict_held(packet: Packet, checkpoint: str) -> bool:
    return packet.checkpoint(checkpoint).conflict is not None and any(
        h.checkpoint == checkpoint and h.source is HoldSource.CONFLICT for h in packet.holds
    )


@relaxed
@given(cases())
def test_no_checkpoint_is_lost_or_duplicated(case: Case) -> None:
    packet = build(case)
    assert sorted(c.id for c in packet.timeline) == sorted(c.id for c in case.plan.checkpoints)


@relaxed
@given(cases())
def test_every_after_dependency_holds_unless_the_checkpoint_is_held_in_conflict(case: Case) -> None:
    packet = build(case)
    for checkpoint in case.plan.checkpoints:
        line = packet.checkpoint(checkpoint.id)
        for dep in checkpoint.after:
            assert packet.checkpoint(dep).end <= line.start or conflict_held(packet, checkpoint.id)
            assert packet.position(dep) < packet.position(checkpoint.id)


@relaxed
@given(cases())
def test_protected_windows_are_respected_or_the_conflict_is_held(case: Case) -> None:
    packet = build(case)
    for checkpoint in case.plan.checkpoints:
        if not checkpoint.protected or checkpoint.window is None:
            continue
        line = packet.checkpoint(checkpoint.id)
        window = checkpoint.window
        inside = (window.not_before is None or line.start >= window.not_before) and (
            window.not_after is None or line.end <= window.not_after
        )
        assert inside or conflict_held(packet, checkpoint.id) or checkpoint.id in case.facts.waived


@relaxed
@given(cases())
def test_conflict_holds_are_exactly_the_protected_checkpoints_in_conflict(case: Case) -> None:
    packet = build(case)
    conflict_holds = {h.checkpoint for h in packet.holds if h.source is HoldSource.CONFLICT}
    protected_conflicts = {c.id for c in packet.conflicts if c.protected}
    assert conflict_holds == protected_conflicts
    assert {h.checkpoint for h in packet.holds} == {c.id for c in packet.timeline if c.held}


@relaxed
@given(cases())
def test_waits_on_names_held_checkpoints_upstream(case: Case) -> None:
    packet = build(case)
    for checkpoint in case.plan.checkpoints:
        waits_on = packet.checkpoint(checkpoint.id).waits_on
        assert all(packet.checkpoint(name).held for name in waits_on)
        held_deps = {dep for dep in checkpoint.after if packet.checkpoint(dep).held}
        assert held_deps <= set(waits_on)


@relaxed
@given(cases())
def test_building_twice_gives_the_same_hash(case: Case) -> None:
    reordered_facts = Facts(
        late=dict(reversed(list(case.facts.late.items()))),
        waived=case.facts.waived,
        released=case.facts.released,
    )
    again = Case(case.plan, reordered_facts, dict(reversed(list(case.acting.items()))))
    assert build(case).hash == build(case).hash == build(again).hash


@relaxed
@given(st.data())
def test_notices_go_only_to_principals_of_material_changes(data: st.DataObject) -> None:
    plan = data.draw(plans())
    old = build(Case(plan, data.draw(facts_for(plan)), data.draw(acting_maps())), version=1)
    new = build(Case(plan, data.draw(facts_for(plan)), data.draw(acting_maps())), version=2)
    shift = timedelta(minutes=data.draw(st.integers(0, 30)))
    delta = diff(old, new, material_shift=shift)

    notices = delta.notices()
    for user, changes in notices.items():
        assert changes
        assert all(c.material and user in c.principals for c in changes)
        assert changes == tuple(c for c in delta.material_changes if user in c.principals)
    told = {user for c in delta.material_changes for user in c.principals}
    assert set(notices) == told
    for change in delta.changes:
        before, after = old.checkpoint(change.checkpoint), new.checkpoint(change.checkpoint)
        expected = {before.owner_user, after.owner_user, *before.observer_users, *after.observer_users}
        assert change.principals == tuple(sorted(expected))
        big_move = max(abs(change.moved_by), abs(change.end_moved_by)) >= shift > timedelta(0)
        assert not big_move or change.material
