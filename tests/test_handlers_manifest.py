"""The approval manifest: refused until the exact revision is signed off, then emitted, ledgered, verified."""

from __future__ import annotations

import copy
from typing import Any

from handlers import commands as c
from handlers.commands import EmitManifest
from handlers.manifest import MANIFEST_EMITTED, check_manifest, emit_manifest
from handlers.runs import sign_off
from packets.manifest import differences, manifest_hash
from tests import bundle_fixtures, handler_fixtures
from tests.bundle_fixtures import DIGEST, BundleWorld, bundle_plan
from tests.handler_fixtures import REL1, RISK1, World

# pytest finds fixtures in the module namespace.
sqlite_uow = handler_fixtures.sqlite_uow
world = handler_fixtures.world
bundle_world = bundle_fixtures.bundle_world


async def emitted(w: BundleWorld) -> dict[str, Any]:
    outcome = await emit_manifest(EmitManifest(run=w.run, user=REL1), w.deps)
    assert outcome.ok, outcome.message
    manifest: dict[str, Any] = outcome.data["manifest"]
    return manifest


async def test_the_manifest_is_refused_until_every_signoff_role_approved_the_revision(
    bundle_world: BundleWorld,
) -> None:
    await bundle_world.open()
    await sign_off(
        c.SignOff(run=bundle_world.run, user=REL1, revision=bundle_world.revision), bundle_world.deps
    )

    outcome = await emit_manifest(EmitManifest(run=bundle_world.run, user=REL1), bundle_world.deps)

    assert not outcome.ok
    assert outcome.message == (
        f"No manifest yet: revision {bundle_world.revision[:12]} still waits for sign-off by payments-risk."
    )
    assert await bundle_world.entries(MANIFEST_EMITTED) == []
    (refused,) = await bundle_world.entries("refused")
    assert refused.payload["action"] == "manifest"


async def test_a_plan_without_a_bundle_has_no_manifest(world: World) -> None:
    await world.signed()

    outcome = await emit_manifest(EmitManifest(run=world.run, user=REL1), world.deps)

    assert not outcome.ok
    assert "has no bundle section" in outcome.message


async def test_the_manifest_binds_the_signed_revision_to_its_artifacts_queue_window_and_signers(
    bundle_world: BundleWorld,
) -> None:
    await bundle_world.signed()
    plan = bundle_plan()

    manifest = await emitted(bundle_world)

    assert manifest["revision"] == plan.revision
    assert plan.bundle is not None and manifest["bundle_digest"] == plan.bundle.digest
    assert [(a["name"], a["digest"]) for a in manifest["artifacts"]] == [("token-service", DIGEST)]
    assert manifest["queue"] == "prod-deploy-east"
    assert manifest["window"] == {"start": "2026-11-24T21:00:00-05:00", "end": "2026-11-24T23:00:00-05:00"}
    assert [(s["role"], s["user"]) for s in manifest["signers"]] == [
        ("release-authority", REL1),
        ("payments-risk", RISK1),
    ]
    assert set(manifest["lineage"].values()) == {plan.revision}
    assert set(manifest["lineage"]) == {
        "artifacts.token-service",
        "cohorts",
        "dependencies.hsm-firmware",
        "environment",
        "handoff",
    }
    (ready,) = await bundle_world.entries("run_ready")
    assert (manifest["ledger_head"]["seq"], manifest["ledger_head"]["hash"]) == (ready.seq, ready.hash)
    assert manifest["hash"] == manifest_hash(manifest)


async def test_emitting_the_manifest_ledgers_its_hash(bundle_world: BundleWorld) -> None:
    await bundle_world.signed()

    manifest = await emitted(bundle_world)

    (entry,) = await bundle_world.entries(MANIFEST_EMITTED)
    assert entry.actor == REL1
    assert entry.payload["hash"] == manifest["hash"]
    assert entry.payload["revision"] == manifest["revision"]


async def test_a_good_manifest_verifies_against_the_plan_file_and_the_ledger(
    bundle_world: BundleWorld,
) -> None:
    await bundle_world.signed()
    manifest = await emitted(bundle_world)

    assert differences(manifest, bundle_plan()) == []
    assert await check_manifest(manifest, bundle_world.deps) == []


async def test_a_doctored_digest_breaks_the_hash_and_differs_from_the_plan_file(
    bundle_world: BundleWorld,
) -> None:
    await bundle_world.signed()
    doctored = copy.deepcopy(await emitted(bundle_world))
    doctored["artifacts"][0]["digest"] = "sha256:" + "ef" * 32

    found = differences(doctored, bundle_plan())

    assert [line.split(":")[0] for line in found] == ["hash", "artifacts"]


async def test_a_rehashed_manifest_with_another_signer_is_caught_by_the_ledger(
    bundle_world: BundleWorld,
) -> None:
    await bundle_world.signed()
    doctored = copy.deepcopy(await emitted(bundle_world))
    doctored["signers"][1]["user"] = "U0MALLORY"
    doctored["hash"] = manifest_hash(doctored)

    assert differences(doctored, bundle_plan()) == []
    found = await check_manifest(doctored, bundle_world.deps)

    assert [line.split(":")[0] for line in found] == ["signers", "ledger"]
    assert "U0MALLORY" in found[0]


async def test_a_manifest_checked_against_another_revision_of_the_plan_names_the_revision(
    bundle_world: BundleWorld,
) -> None:
    await bundle_world.signed()
    manifest = await emitted(bundle_world)
    rebuilt = bundle_plan(bundle=bundle_world.bundle.replace(DIGEST, "sha256:" + "ef" * 32))

    found = differences(manifest, rebuilt)

    assert [line.split(":")[0] for line in found] == ["revision", "bundle_digest", "artifacts"]
