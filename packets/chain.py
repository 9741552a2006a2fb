"""The ledger's hash chain as pure functions: what `store.ledger` writes and an export is checked by.

Each entry is `{seq, at, run, actor, kind, payload}` with `seq` counting 1..n per run, and
`hash = sha256(prev_hash + canonical_json(entry))`, the first `prev_hash` being 64 zeros. `at` is
hashed in UTC so both databases, and an exported file, give back the same text.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from packets.plan import canonical_json

GENESIS = "0" * 64


def entry_body(*, seq: int, at: datetime, run_id: str, actor: str, kind: str, payload: Any) -> dict[str, Any]:
    """The hashed form of an entry."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at.isoformat()} given; the ledger needs timezone-aware times")
    return {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(),
        "run": run_id,
        "actor": actor,
        "kind": kind,
        "payload": payload,
    }


def chain_hash(prev_hash: str, body: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(body)).encode("utf-8")).hexdigest()
