"""The approval manifest: what the deployment queue receives once a bundle revision is signed off.

It binds one exact plan revision (and its bundle digest) to the artifact digests, the deployment
queue and its window, the people who signed and as which role, the holds open and resolved, the
lineage (which plan revision each bundle field came from) and the ledger head at approval (the
entry where the last sign-off made the run ready). Its `hash` is the sha256 of the canonical JSON
of everything else, so a doctored manifest no longer matches its own hash, and the hash is
written to the run's ledger when the manifest is emitted.

Pure: the caller loads the sign-offs, holds and ledger point; `differences` compares a manifest
with a plan file and reports every mismatch as a sentence.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from packets.bundle import Bundle
from packets.engine.progress import HoldRecord, Signoff
from packets.plan import Plan, canonical_json

FORMAT = "cutover-bot approval manifest 1"
# The fields `differences` checks against the plan file, in the order it reports them.
PLAN_FIELDS: tuple[str, ...] = (
    "plan",
    "revision",
    "bundle_digest",
    "artifacts",
    "queue",
    "window",
    "environment",
)


@dataclass(frozen=True, slots=True)
class LedgerPoint:
    """One entry of a run's chain: where the approval was recorded."""

    seq: int
    hash: str
    at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "at": self.at.isoformat()}


@dataclass(frozen=True, slots=True)
class Link:
    """The run this one superseded (or was superseded by), and its revision."""

    run: str
    revision: str

    def as_json(self) -> dict[str, str]:
        return {"run": self.run, "revision": self.revision}


def bundle_fields(bundle: Bundle) -> dict[str, Any]:
    """The bundle cut into the fields lineage traces: each artifact, each dependency, the rest whole."""
    canonical = bundle.canonical()
    fields: dict[str, Any] = {}
    for artifact in canonical["artifacts"]:
        fields[f"artifacts.{artifact['name']}"] = artifact
    fields["cohorts"] = canonical["cohorts"]
    for dependency in canonical["dependencies"]:
        fields[f"dependencies.{dependency['name']}"] = dependency
    fields["environment"] = canonical["environment"]
    fields["handoff"] = canonical["handoff"]
    return fields


def lineage(plan: Plan, *, earlier: Sequence[Plan] = ()) -> dict[str, str]:
    """For each bundle field, the oldest revision in an unbroken line that had the same value.

    `earlier` are the revisions this one superseded, oldest first. A field unchanged since an
    earlier revision came from it; a changed (or new) field came from this revision.
    """
    if plan.bundle is None:
        return {}
    history = [(p.revision, bundle_fields(p.bundle) if p.bundle is not None else {}) for p in earlier]
    found: dict[str, str] = {}
    for name, value in bundle_fields(plan.bundle).items():
        origin = plan.revision
        for revision, fields in reversed(history):
            if fields.get(name, _ABSENT) != value:
                break
            origin = revision
        found[name] = origin
    return found


_ABSENT = object()


def _artifacts(bundle: Bundle) -> list[dict[str, Any]]:
    return [
        {
            "name": a["name"],
            "version": a["version"],
            "digest": a["digest"],
            "provenance": a["provenance"],
            "rollback": a["rollback"],
            "superseded": a["superseded"],
        }
        for a in bundle.canonical()["artifacts"]
    ]


def plan_part(plan: Plan) -> dict[str, Any]:
    """The manifest fields that come straight from the plan file: what `differences` compares."""
    bundle = plan.bundle
    if bundle is None:
        raise ValueError(f"plan {plan.plan} has no bundle section")
    canonical = bundle.canonical()
    return {
        "plan": plan.plan,
        "revision": plan.revision,
        "bundle_digest": bundle.digest,
        "artifacts": _artifacts(bundle),
        "queue": bundle.handoff.queue,
        "window": canonical["handoff"]["window"],
        "environment": canonical["environment"],
    }


def _hold(hold: HoldRecord) -> dict[str, Any]:
    data = hold.as_json()
    return {
        "id": data["id"],
        "reason": data["reason"],
        "source": data["source"],
        "release_by": data["release_by"],
        "opened_at": data["opened_at"],
        "state": data["state"],
        "released_at": data["released_at"],
        "releases": data["releases"],
    }


def signer_list(plan: Plan, signoffs: Mapping[str, Signoff]) -> list[dict[str, str]]:
    """The sign-offs of the plan's revision, in the plan's sign-off order."""
    return [
        {"role": role, "user": s.user, "at": s.at.isoformat()}
        for role in plan.authority.signoff
        if (s := signoffs.get(role)) is not None and s.revision == plan.revision
    ]


def build_manifest(
    *,
    plan: Plan,
    run: str,
    signoffs: Mapping[str, Signoff],
    holds: Sequence[HoldRecord],
    approval: LedgerPoint,
    earlier: Sequence[Plan] = (),
    supersedes: Link | None = None,
) -> dict[str, Any]:
    """The sealed manifest (with its `hash`) for a run whose every sign-off role approved `plan`."""
    missing = [
        role
        for role in plan.authority.signoff
        if role not in {s["role"] for s in signer_list(plan, signoffs)}
    ]
    if missing:
        raise ValueError(f"revision {plan.revision[:12]} is not signed off by {', '.join(missing)}")
    body = {
        "format": FORMAT,
        "run": run,
        "change_record": plan.change_record,
        **plan_part(plan),
        "signers": signer_list(plan, signoffs),
        "holds": {
            "open": [_hold(h) for h in holds if h.is_open],
            "resolved": [_hold(h) for h in holds if not h.is_open],
        },
        "lineage": lineage(plan, earlier=earlier),
        "ledger_head": approval.as_json(),
        "supersedes": supersedes.as_json() if supersedes is not None else None,
    }
    return {**body, "hash": manifest_hash(body)}


def dump(manifest: Mapping[str, Any]) -> str:
    """The manifest as the file a deployment queue takes: indented JSON, keys sorted."""
    return json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON of every field but `hash` itself."""
    body = {k: v for k, v in manifest.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def differences(manifest: Mapping[str, Any], plan: Plan) -> list[str]:
    """Every way the manifest disagrees with itself or with the plan file; empty when it matches."""
    found: list[str] = []
    stated = manifest.get("hash")
    actual = manifest_hash(manifest)
    if stated != actual:
        found.append(f"hash: the manifest says {stated} but its content hashes to {actual}")
    if plan.bundle is None:
        found.append(f"bundle: plan {plan.plan} has no bundle section")
        return found
    expected = plan_part(plan)
    for name in PLAN_FIELDS:
        if manifest.get(name) != expected[name]:
            found.append(
                f"{name}: the manifest has {_short(manifest.get(name))}, "
                f"the plan file {_short(expected[name])}"
            )
    return found


def _short(value: Any) -> str:
    text = canonical_json(value)
    return text if len(text) <= 160 else text[:157] + "..."
