"""The plan's `bundle:` section: its shape, its place in the revision, and every refusal."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from packets.bundle import BundleHoldKind, WaiverState, bundle_holds
from packets.plan import PlanInvalid
from packets.plan_load import load_plan
from tests.test_plan_checks import PlanData, dump, small_plan

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DIGEST = "sha256:" + "ab" * 32
OLD_DIGEST = "sha256:" + "cd" * 32

# The revisions of the example plans written before bundles existed, as main computed them. A plan
# without a bundle must keep its revision: its sign-offs are bound to it.
REVISIONS_BEFORE_BUNDLES = {
    "command-window-resequencing.yaml": "70958505c3a538a2980a6ee219c08d58ea213bd9f5d8582ed339b5d2aeb8b261",
    "ga-canary-breach.yaml": "d0e4da61dc8034db881748b3893a89508aea7718d1a7a49677a90b6c59258eda",
    "ga-canary-hypercare.yaml": "d0ca30956da8791584fdb1f3e2d580b528ebc4051a0ffc76b35379b3f4860c9c",
    # Issue 12 changed this example (its script adopts the drift proposal), not the bundle field.
    "payments-tokenization.yaml": "3818b123ccdf0345ac4df683eb8cbfdbb2c3fe3623b6d40751b23681a3d02d68",
}


def bundle_plan() -> PlanData:
    """The small plan with a bundle whose cohorts are the ones its traffic steps name."""
    data = small_plan()
    data["bundle"] = {
        "artifacts": [
            {
                "name": "token-service",
                "version": "4.2.0",
                "digest": DIGEST,
                "provenance": {"source": "https://ci.example.com/builds/812"},
                "rollback": {"version": "4.1.9", "digest": OLD_DIGEST},
            }
        ],
        "cohorts": ["merchant-a", "all"],
        "dependencies": [
            {
                "name": "hsm-firmware",
                "version": ">= 7.4",
                "waiver": {"owner": "security", "state": "unresolved"},
            }
        ],
        "environment": {"scope": ["prod-us-east-1"]},
        "handoff": {
            "queue": "prod-deploy-east",
            "window": {"start": "2026-11-24T21:30:00-05:00", "end": "2026-11-24T23:00:00-05:00"},
        },
    }
    return data


def refusals(data: PlanData) -> list[str]:
    with pytest.raises(PlanInvalid) as refused:
        load_plan(dump(data), source="bundle.yaml")
    return refused.value.lines()


def line_number(text: str, needle: str, *, after: str | None = None) -> int:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i for i, line in enumerate(lines) if i >= start and needle in line) + 1


# --- shape and revision -------------------------------------------------------------------------


def test_a_plan_with_a_bundle_loads_with_every_field() -> None:
    plan = load_plan(dump(bundle_plan()))

    assert plan.bundle is not None
    artifact = plan.bundle.artifact("token-service")
    assert (artifact.version, artifact.digest, artifact.has_rollback) == ("4.2.0", DIGEST, True)
    assert (
        artifact.provenance is not None and artifact.provenance.source == "https://ci.example.com/builds/812"
    )
    assert plan.bundle.cohorts == ["merchant-a", "all"]
    waiver = plan.bundle.dependencies[0].waiver
    assert waiver is not None and (waiver.owner, waiver.state) == ("security", WaiverState.UNRESOLVED)
    assert plan.bundle.handoff.queue == "prod-deploy-east"


def test_a_provenance_written_as_text_is_its_source() -> None:
    data = bundle_plan()
    data["bundle"]["artifacts"][0]["provenance"] = "https://ci.example.com/builds/812"

    plan = load_plan(dump(data))

    assert plan.bundle is not None
    assert (
        plan.bundle.artifacts[0].provenance == load_plan(dump(bundle_plan())).bundle.artifacts[0].provenance
    )  # type: ignore[union-attr]


@pytest.mark.parametrize("name", sorted(REVISIONS_BEFORE_BUNDLES))
def test_the_revision_of_every_example_plan_without_a_bundle_is_unchanged(name: str) -> None:
    plan = load_plan((EXAMPLES / name).read_text(encoding="utf-8"), source=name)

    assert plan.bundle is None
    assert plan.revision == REVISIONS_BEFORE_BUNDLES[name]


def test_a_plan_without_a_bundle_has_no_bundle_key_in_its_canonical_json() -> None:
    plan = load_plan(dump(small_plan()))

    assert "bundle" not in json.loads(plan.canonical_json())


def _rebuild(data: PlanData) -> None:
    data["bundle"]["artifacts"][0]["digest"] = "sha256:" + "ef" * 32


def _widen_cohorts(data: PlanData) -> None:
    data["bundle"]["cohorts"].append("merchant-b")


def _move_queue(data: PlanData) -> None:
    data["bundle"]["handoff"]["queue"] = "prod-deploy-west"


def _resolve_waiver(data: PlanData) -> None:
    data["bundle"]["dependencies"][0]["waiver"]["state"] = "resolved"


def _widen_scope(data: PlanData) -> None:
    data["bundle"]["environment"]["scope"].append("prod-eu-west-1")


@pytest.mark.parametrize("change", [_rebuild, _widen_cohorts, _move_queue, _resolve_waiver, _widen_scope])
def test_every_bundle_field_is_in_the_revision(change: Callable[[PlanData], None]) -> None:
    data = bundle_plan()
    changed = copy.deepcopy(data)
    change(changed)

    assert load_plan(dump(changed)).revision != load_plan(dump(data)).revision
    assert load_plan(dump(changed)).bundle.digest != load_plan(dump(data)).bundle.digest  # type: ignore[union-attr]


def test_the_example_bundle_plan_checks_clean() -> None:
    plan = load_plan((EXAMPLES / "rc-bundle-handoff.yaml").read_text(encoding="utf-8"))

    assert plan.bundle is not None
    assert [a.name for a in plan.bundle.artifacts] == ["token-service", "vault-proxy"]


# --- refusals -----------------------------------------------------------------------------------


def test_an_artifact_without_a_digest_is_refused_naming_the_artifact() -> None:
    data = bundle_plan()
    del data["bundle"]["artifacts"][0]["digest"]
    text = dump(data)

    assert refusals(data) == [
        f"bundle.yaml:{line_number(text, 'name: token-service')}: bundle.artifacts.0: "
        "artifact 'token-service' has no digest; give digest: sha256:<64 hex digits>"
    ]


@pytest.mark.parametrize(
    "digest",
    ["sha256:abc", "md5:" + "ab" * 16, "ab" * 32, "sha256:" + "AB" * 32, "sha256:" + "ab" * 32 + "0"],
)
def test_an_artifact_with_a_malformed_digest_is_refused(digest: str) -> None:
    data = bundle_plan()
    data["bundle"]["artifacts"][0]["digest"] = digest
    text = dump(data)

    assert refusals(data) == [
        f"bundle.yaml:{line_number(text, 'digest: ' + digest[:10])}: bundle.artifacts.0.digest: "
        f"digest '{digest}' is malformed; write sha256: followed by 64 lowercase hex digits"
    ]


def test_a_traffic_cohort_not_in_the_bundle_cohorts_is_refused() -> None:
    data = bundle_plan()
    data["bundle"]["cohorts"] = ["merchant-a"]
    text = dump(data)

    assert refusals(data) == [
        f"bundle.yaml:{line_number(text, 'cohort: all')}: checkpoints.3.traffic.cohort: "
        "cohort 'all' is not in bundle.cohorts (merchant-a)"
    ]


def test_an_artifact_without_a_rollback_pointer_is_refused() -> None:
    data = bundle_plan()
    del data["bundle"]["artifacts"][0]["rollback"]

    (line,) = refusals(data)

    assert "bundle.artifacts.0: artifact 'token-service' has no rollback pointer" in line


def test_an_artifact_whose_rollback_is_declared_none_is_accepted_and_held() -> None:
    data = bundle_plan()
    data["bundle"]["artifacts"][0]["rollback"] = "none"

    plan = load_plan(dump(data))

    assert plan.bundle is not None and not plan.bundle.artifacts[0].has_rollback
    kinds = [h.kind for h in bundle_holds(plan.bundle, start_and_rollback=("release-eng",))]
    assert BundleHoldKind.NO_ROLLBACK in kinds


def test_a_waiver_without_owner_is_refused() -> None:
    data = bundle_plan()
    del data["bundle"]["dependencies"][0]["waiver"]["owner"]
    text = dump(data)

    assert refusals(data) == [
        f"bundle.yaml:{line_number(text, 'waiver:')}: bundle.dependencies.0.waiver: "
        "the waiver for 'hsm-firmware' has no owner; name a plan role"
    ]


def test_a_waiver_whose_owner_is_not_a_plan_role_is_refused() -> None:
    data = bundle_plan()
    data["bundle"]["dependencies"][0]["waiver"]["owner"] = "vendor"
    text = dump(data)

    assert refusals(data) == [
        f"bundle.yaml:{line_number(text, 'owner: vendor')}: bundle.dependencies.0.waiver.owner: "
        "waiver owner 'vendor' is not a plan role (roles: release-authority, release-eng, security)"
    ]


def test_a_handoff_window_that_ends_before_it_starts_is_refused() -> None:
    data = bundle_plan()
    data["bundle"]["handoff"]["window"]["end"] = "2026-11-24T21:00:00-05:00"

    (line,) = refusals(data)

    assert ": bundle.handoff.window.end: handoff window ends at" in line


def test_a_handoff_without_a_queue_is_refused() -> None:
    data = bundle_plan()
    del data["bundle"]["handoff"]["queue"]

    (line,) = refusals(data)

    assert line.endswith("bundle.handoff.queue: required field is missing")


def test_an_unknown_bundle_field_is_refused() -> None:
    data: dict[str, Any] = bundle_plan()
    data["bundle"]["signed_by"] = "someone"

    (line,) = refusals(data)

    assert line.endswith("bundle.signed_by: unknown field")


# --- holds from the bundle ----------------------------------------------------------------------


def test_an_unresolved_waiver_holds_for_its_owner_and_a_resolved_one_does_not() -> None:
    plan = load_plan(dump(bundle_plan()))
    assert plan.bundle is not None

    (hold,) = bundle_holds(plan.bundle, start_and_rollback=("release-authority", "release-eng"))

    assert (hold.kind, hold.subject, hold.release_by) == (
        BundleHoldKind.WAIVER,
        "hsm-firmware",
        ("security",),
    )
    data = bundle_plan()
    _resolve_waiver(data)
    resolved = load_plan(dump(data)).bundle
    assert resolved is not None and bundle_holds(resolved, start_and_rollback=("release-eng",)) == ()


def test_a_superseded_artifact_holds_for_the_start_and_rollback_roles() -> None:
    data = bundle_plan()
    data["bundle"]["artifacts"][0]["superseded"] = True
    _resolve_waiver(data)
    plan = load_plan(dump(data))
    assert plan.bundle is not None

    (hold,) = bundle_holds(plan.bundle, start_and_rollback=("release-authority", "release-eng"))

    assert (hold.kind, hold.subject) == (BundleHoldKind.SUPERSEDED, "token-service")
    assert hold.release_by == ("release-authority", "release-eng")
