"""Check an exported evidence packet with no database: its chain, and every claim against it.

The JSON export carries the run's ledger entries (`ledger.chain`, exactly as hashed). The chain
is recomputed from them (seq 1..n, each linking to the one before, each hash over its content)
and must end at the head the export states. Then every claim of the packet must be backed by an
entry: each sign-off, adoption, hold opened and hold release by who, as which role, when; each
traffic change, rollback, refusal and step of the timeline; and the final state. A claim no
entry backs is named.

Pure: the caller reads the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from packets.chain import GENESIS, chain_hash, entry_body

_FINAL_KINDS = {"completed": "run_completed", "rolled_back": "run_rolled_back", "aborted": "run_aborted"}
_RELEASE_KINDS = ("hold_release_recorded", "hold_released")
_ADOPTION_KINDS = ("packet_adopted", "packet_authoritative")

Entry = Mapping[str, Any]


class NotAnExport(ValueError):
    """The file is not an evidence export with ledger entries."""


def _instant(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def check_chain(run: str, chain: Sequence[Entry], head: Any) -> list[str]:
    """Problems with the exported chain itself; empty when it holds and ends at `head`."""
    prev = GENESIS
    for expected, entry in enumerate(chain, start=1):
        seq = entry.get("seq")
        if seq != expected:
            return [f"ledger broken at seq {expected}: entry {expected} is missing"]
        at = _instant(entry.get("at"))
        if at is None:
            return [f"ledger broken at seq {seq}: its time is not an ISO 8601 time with an offset"]
        if entry.get("run") != run:
            return [f"ledger broken at seq {seq}: the entry belongs to run {entry.get('run')}"]
        if entry.get("prev_hash") != prev:
            return [f"ledger broken at seq {seq}: does not link to the entry before it"]
        body = entry_body(
            seq=expected,
            at=at,
            run_id=run,
            actor=str(entry.get("actor")),
            kind=str(entry.get("kind")),
            payload=entry.get("payload"),
        )
        if chain_hash(prev, body) != entry.get("hash"):
            return [f"ledger broken at seq {seq}: hash does not match the entry's content"]
        prev = str(entry["hash"])
    if (head or GENESIS) != prev:
        last = len(chain)
        return [f"ledger broken: the export's head is not the hash of its last entry (seq {last})"]
    return []


def _backed(
    chain: Sequence[Entry], kinds: Sequence[str], test: Callable[[Entry, Mapping[str, Any]], bool], claim: Any
) -> bool:
    return any(e.get("kind") in kinds and test(e, claim) for e in chain)


def _same_instant(entry: Entry, claimed: Any) -> bool:
    at = _instant(claimed)
    return at is not None and _instant(entry.get("at")) == at


def _payload(entry: Entry) -> Mapping[str, Any]:
    payload = entry.get("payload")
    return payload if isinstance(payload, Mapping) else {}


def _signs(e: Entry, s: Mapping[str, Any]) -> bool:
    return (
        e.get("actor") == s.get("user")
        and _payload(e).get("role") == s.get("role")
        and _payload(e).get("revision") == s.get("revision")
        and _same_instant(e, s.get("at"))
    )


def _adopts(e: Entry, p: Mapping[str, Any]) -> bool:
    adopted = p["adopted"]
    return (
        _payload(e).get("version") == p.get("version")
        and e.get("actor") == adopted.get("by")
        and _same_instant(e, adopted.get("at"))
    )


def _opens(e: Entry, h: Mapping[str, Any]) -> bool:
    return _payload(e).get("hold") == h.get("id") and _same_instant(e, h.get("opened_at"))


def _releases(e: Entry, claim: Mapping[str, Any]) -> bool:
    hold, r = claim["hold"], claim["release"]
    return (
        _payload(e).get("hold") == hold.get("id")
        and _payload(e).get("user") == r.get("user")
        and _payload(e).get("role") == r.get("role")
        and _same_instant(e, r.get("at"))
    )


def _shifts(e: Entry, t: Mapping[str, Any]) -> bool:
    return (
        _payload(e).get("cohort") == t.get("cohort")
        and _payload(e).get("key") == t.get("key")
        and _payload(e).get("percent") == t.get("percent")
    )


def _any(_e: Entry, _claim: Mapping[str, Any]) -> bool:
    return True


def check_claims(evidence: Mapping[str, Any], chain: Sequence[Entry]) -> list[str]:
    """Each claim of the packet no entry backs, as a sentence."""
    problems: list[str] = []
    for s in evidence.get("signoffs") or []:
        if not _backed(chain, ("signoff",), _signs, s):
            problems.append(
                f"the sign-off by {s.get('user')} as {s.get('role')} at {s.get('at')} has no entry"
            )
    for p in evidence.get("packets") or []:
        adopted = p.get("adopted")
        if adopted and not _backed(chain, _ADOPTION_KINDS, _adopts, p):
            problems.append(
                f"the adoption of packet version {p.get('version')} by {adopted.get('by')} "
                f"at {adopted.get('at')} has no entry"
            )
    for h in evidence.get("holds") or []:
        if not _backed(chain, ("hold_opened",), _opens, h):
            problems.append(f"the opening of hold {h.get('id')} at {h.get('opened_at')} has no entry")
        for r in h.get("releases") or []:
            if not _backed(chain, _RELEASE_KINDS, _releases, {"hold": h, "release": r}):
                problems.append(
                    f"the release of hold {h.get('id')} by {r.get('user')} as {r.get('role')} "
                    f"at {r.get('at')} has no entry"
                )
    for t in evidence.get("traffic") or []:
        if not _backed(chain, ("traffic_shifted",), _shifts, t):
            problems.append(
                f"the traffic change of {t.get('cohort')} to {t.get('percent')}% "
                f"at {t.get('at')} has no entry"
            )
    by_seq = {e.get("seq"): e for e in chain}
    for section, kind in (("rollbacks", None), ("refusals", "refused")):
        for claim in evidence.get(section) or []:
            entry = by_seq.get(claim.get("seq"))
            if (
                entry is None
                or (kind is not None and entry.get("kind") != kind)
                or (kind is None and entry.get("kind") != claim.get("kind"))
                or entry.get("actor") != claim.get("actor")
                or not _same_instant(entry, claim.get("at"))
            ):
                what = "refusal" if kind else "rollback"
                problems.append(f"the {what} at seq {claim.get('seq')} is not the entry at that seq")
    for step in evidence.get("steps") or []:
        entry = by_seq.get(step.get("seq"))
        if (
            entry is None
            or entry.get("kind") != step.get("kind")
            or entry.get("actor") != step.get("by")
            or not _same_instant(entry, step.get("at"))
        ):
            problems.append(f"the step at seq {step.get('seq')} is not the entry at that seq")
    final = evidence.get("final_state")
    final_kind = _FINAL_KINDS.get(str(final))
    if final_kind is not None and not _backed(chain, (final_kind,), _any, {}):
        problems.append(f"the final state {final} has no entry")
    return problems


def check_export(evidence: Any) -> tuple[int, list[str]]:
    """(entries checked, problems) for an evidence export; `NotAnExport` when it carries no chain."""
    ledger = evidence.get("ledger") if isinstance(evidence, Mapping) else None
    chain = ledger.get("chain") if isinstance(ledger, Mapping) else None
    if ledger is None or not isinstance(chain, list) or not all(isinstance(e, Mapping) for e in chain):
        raise NotAnExport("the file carries no ledger entries (ledger.chain): export it with this version")
    problems = check_chain(str(evidence.get("run")), chain, ledger.get("head"))
    if ledger.get("entries") != len(chain):
        problems.append(f"the export counts {ledger.get('entries')} entries but carries {len(chain)}")
    problems += check_claims(evidence, chain)
    return len(chain), problems
