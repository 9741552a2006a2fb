"""The rules a plan's `bundle:` section must satisfy beyond its field types.

`check_bundle(plan)` returns `(field path, problem)` pairs; `packets.plan_checks` turns them into
`FILE:LINE: field.path: problem` lines like every other plan rule. Refused: an artifact without
a digest or with one not of the form `sha256:<64 lowercase hex>`, an artifact without a rollback
pointer (write `rollback: none` to accept the plan and hold the handoff instead), a traffic
cohort not listed in `bundle.cohorts`, a waiver without owner or whose owner is not a plan role,
duplicate artifact or dependency names, and a handoff window that ends before it starts.
"""

from __future__ import annotations

from collections.abc import Sequence

from packets.bundle import DIGEST, NO_ROLLBACK
from packets.plan import Plan

Finding = tuple[tuple[str, ...], str]


def check_bundle(plan: Plan) -> list[Finding]:
    bundle = plan.bundle
    if bundle is None:
        return []
    found: list[Finding] = []
    names: dict[str, int] = {}
    for i, artifact in enumerate(bundle.artifacts):
        at = ("bundle", "artifacts", str(i))
        if artifact.name in names:
            found.append(
                (
                    (*at, "name"),
                    f"artifact '{artifact.name}' is listed twice (first at artifacts.{names[artifact.name]})",
                )
            )
        names.setdefault(artifact.name, i)
        if artifact.digest is None:
            found.append(
                (at, f"artifact '{artifact.name}' has no digest; give digest: sha256:<64 hex digits>")
            )
        elif not DIGEST.match(artifact.digest):
            found.append(((*at, "digest"), _bad_digest(artifact.digest)))
        if artifact.rollback is None:
            found.append(
                (
                    at,
                    f"artifact '{artifact.name}' has no rollback pointer; give rollback: {{version, digest}} "
                    f"(or rollback: {NO_ROLLBACK} to hold the handoff until one exists)",
                )
            )
        elif artifact.has_rollback and not isinstance(artifact.rollback, str):
            digest = artifact.rollback.digest
            if digest is not None and not DIGEST.match(digest):
                found.append(((*at, "rollback", "digest"), _bad_digest(digest)))
    found += _duplicates(bundle.cohorts, ("bundle", "cohorts"), "cohort")
    for i, checkpoint in enumerate(plan.checkpoints):
        if checkpoint.traffic is not None and checkpoint.traffic.cohort not in bundle.cohorts:
            known = ", ".join(bundle.cohorts) or "none listed"
            found.append(
                (
                    ("checkpoints", str(i), "traffic", "cohort"),
                    f"cohort '{checkpoint.traffic.cohort}' is not in bundle.cohorts ({known})",
                )
            )
    dependencies: dict[str, int] = {}
    for i, dependency in enumerate(bundle.dependencies):
        at = ("bundle", "dependencies", str(i))
        if dependency.name in dependencies:
            found.append(
                (
                    (*at, "name"),
                    f"dependency '{dependency.name}' is listed twice "
                    f"(first at dependencies.{dependencies[dependency.name]})",
                )
            )
        dependencies.setdefault(dependency.name, i)
        waiver = dependency.waiver
        if waiver is None:
            continue
        if waiver.owner is None:
            found.append(
                ((*at, "waiver"), f"the waiver for '{dependency.name}' has no owner; name a plan role")
            )
        elif waiver.owner not in plan.roles:
            found.append(
                (
                    (*at, "waiver", "owner"),
                    f"waiver owner '{waiver.owner}' is not a plan role (roles: {', '.join(plan.roles)})",
                )
            )
    if bundle.environment is not None:
        found += _duplicates(bundle.environment.scope, ("bundle", "environment", "scope"), "environment")
    window = bundle.handoff.window
    if window.end <= window.start:
        found.append(
            (
                ("bundle", "handoff", "window", "end"),
                f"handoff window ends at {window.end.isoformat()}, "
                f"not after it starts at {window.start.isoformat()}",
            )
        )
    return found


def _bad_digest(digest: str) -> str:
    return f"digest '{digest}' is malformed; write sha256: followed by 64 lowercase hex digits"


def _duplicates(names: Sequence[str], path: tuple[str, ...], kind: str) -> list[Finding]:
    seen: set[str] = set()
    found: list[Finding] = []
    for i, name in enumerate(names):
        if name in seen:
            found.append(((*path, str(i)), f"{kind} '{name}' is listed twice"))
        seen.add(name)
    return found
