"""The change-window bundle: what a release candidate hands to the deployment queue.

A plan may carry a `bundle:` section: the signed artifacts (name, version, digest, provenance,
rollback pointer), the rollout cohorts its traffic steps may name, the dependencies and their
waivers, the environment scope, and the handoff boundary (the deployment queue and its time
window). All of it is part of the plan's canonical JSON, so it is in the revision people sign
off: a rebuilt artifact or a drifted scope is a new revision and inherits no approval.

The section is optional. A plan without it dumps exactly as before (`Plan.canonical_json` leaves
the key out), so the revision of every existing plan is unchanged.

Cross-field rules (digest form, cohorts, rollback pointers, waiver owners) are in
`packets.bundle_checks`; the holds a bundle opens are derived by `bundle_holds` below.

    bundle:
      artifacts:
        - name: token-service
          version: 4.2.0-rc3
          digest: sha256:<64 lowercase hex digits>
          provenance: {source: https://ci.example.com/token-service/builds/812}
          rollback: {version: 4.1.9, digest: "sha256:..."}   # or `rollback: none` (holds)
          superseded: true                                 # optional; holds the handoff
      cohorts: [merchant-a, all-merchants]
      dependencies:
        - name: hsm-firmware
          version: ">= 7.4"
          waiver: {owner: payments-risk, state: unresolved, reason: 7.3 accepted until Q1}
      environment: {scope: [prod-us-east-1], constraints: [no schema migrations]}
      handoff:
        queue: prod-deploy-east
        window: {start: 2026-11-24T21:00:00-05:00, end: 2026-11-24T23:00:00-05:00}
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# `rollback: none` says, in the revision, that an artifact has no rollback pointer yet: the plan
# is accepted (someone has to be able to hand over a first release) but the handoff is held.
NO_ROLLBACK = "none"


class _Model(BaseModel):
    # The same settings as packets.plan's models: the bundle is hashed with the plan.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


def _require_offset(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp needs an offset, like 2026-11-24T21:00:00-05:00")
    return value


def _provenance(value: Any) -> Any:
    # `provenance: ci.example.com/builds/812` is how people write it; it means the source.
    return {"source": value} if isinstance(value, str) else value


class Provenance(_Model):
    source: str = Field(min_length=1)
    builder: str | None = None


class RollbackPointer(_Model):
    """Where the artifact goes back to: the version (and digest) that is live before the handoff."""

    version: str = Field(min_length=1)
    digest: str | None = None


class Artifact(_Model):
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    # Optional here so that a missing digest is reported by bundle_checks with a plain sentence.
    digest: str | None = None
    provenance: Annotated[Provenance, BeforeValidator(_provenance)] | None = None
    rollback: RollbackPointer | Literal["none"] | None = None
    superseded: bool = False

    @property
    def has_rollback(self) -> bool:
        return isinstance(self.rollback, RollbackPointer)


class WaiverState(StrEnum):
    RESOLVED = "resolved"
    UNRESOLVED = "unresolved"


class Waiver(_Model):
    # Optional here so that a waiver without owner is reported with a plain sentence.
    owner: str | None = None
    state: WaiverState = WaiverState.UNRESOLVED
    reason: str | None = None


class Dependency(_Model):
    name: str = Field(min_length=1)
    version: str | None = None
    waiver: Waiver | None = None


class Environment(_Model):
    scope: list[str] = Field(min_length=1)
    constraints: list[str] = Field(default_factory=list)


class HandoffWindow(_Model):
    start: datetime
    end: datetime

    _offsets = field_validator("start", "end")(_require_offset)

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


class Handoff(_Model):
    queue: str = Field(min_length=1)
    window: HandoffWindow


class Bundle(_Model):
    artifacts: list[Artifact] = Field(min_length=1)
    cohorts: list[str] = Field(default_factory=list)
    dependencies: list[Dependency] = Field(default_factory=list)
    environment: Environment | None = None
    handoff: Handoff

    def canonical(self) -> dict[str, Any]:
        dumped: dict[str, Any] = self.model_dump(mode="json", by_alias=True)
        return dumped

    @property
    def digest(self) -> str:
        """sha256 over the bundle section's canonical JSON: what the manifest binds to."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def artifact(self, name: str) -> Artifact:
        for artifact in self.artifacts:
            if artifact.name == name:
                return artifact
        raise KeyError(name)


class BundleHoldKind(StrEnum):
    WAIVER = "waiver"
    NO_ROLLBACK = "no_rollback"
    SUPERSEDED = "superseded"


@dataclass(frozen=True, slots=True)
class BundleHold:
    """A stop the bundle itself puts before the handoff, and who may lift it."""

    key: str
    kind: BundleHoldKind
    subject: str
    release_by: tuple[str, ...]
    reason: str


def bundle_holds(bundle: Bundle, *, start_and_rollback: tuple[str, ...]) -> tuple[BundleHold, ...]:
    """The holds a bundle opens when its run opens, in bundle order.

    An unresolved waiver is lifted by the waiver's owner role; an artifact without a rollback
    pointer, or one marked superseded, by the plan's start_and_rollback roles.
    """
    holds: list[BundleHold] = []
    for artifact in bundle.artifacts:
        if not artifact.has_rollback:
            holds.append(
                BundleHold(
                    key=f"bundle:rollback:{artifact.name}",
                    kind=BundleHoldKind.NO_ROLLBACK,
                    subject=artifact.name,
                    release_by=start_and_rollback,
                    reason=f"artifact {artifact.name} {artifact.version} has no rollback pointer",
                )
            )
        if artifact.superseded:
            holds.append(
                BundleHold(
                    key=f"bundle:superseded:{artifact.name}",
                    kind=BundleHoldKind.SUPERSEDED,
                    subject=artifact.name,
                    release_by=start_and_rollback,
                    reason=f"artifact {artifact.name} {artifact.version} is marked superseded",
                )
            )
    for dependency in bundle.dependencies:
        waiver = dependency.waiver
        if waiver is None or waiver.state is WaiverState.RESOLVED or waiver.owner is None:
            continue
        why = f": {waiver.reason}" if waiver.reason else ""
        holds.append(
            BundleHold(
                key=f"bundle:waiver:{dependency.name}",
                kind=BundleHoldKind.WAIVER,
                subject=dependency.name,
                release_by=(waiver.owner,),
                reason=f"waiver for dependency {dependency.name} is unresolved{why}",
            )
        )
    return tuple(holds)
