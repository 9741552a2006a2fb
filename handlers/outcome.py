"""What a use case answers: what happened, in words a person can read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    message: str
    run: str | None = None
    # The authoritative packet version at the time of the answer (refusals name it).
    current_version: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def done(
        cls, message: str, *, run: str | None = None, current_version: int | None = None, **data: Any
    ) -> Outcome:
        return cls(ok=True, message=message, run=run, current_version=current_version, data=data)

    @classmethod
    def refused(
        cls, reason: str, *, run: str | None = None, current_version: int | None = None, **data: Any
    ) -> Outcome:
        return cls(ok=False, message=reason, run=run, current_version=current_version, data=data)
