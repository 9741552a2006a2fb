"""The ledger's witness outside the database: chain heads as Slack keeps them.

The bot posts a run's chain head (`seq` and the full hash) as message metadata in the war room
(event type `cutover_ledger_head`). Slack keeps it where a database writer cannot reach, so a
witnessed head the database no longer holds, at that seq with that hash, shows the ledger was
rewritten, cut back, deleted or truncated, however consistently.

A witness file is JSON lines, `{"run": ID, "seq": N, "hash": HEX}`, as `cutover-bot ledger
witness RUN` prints them from `conversations.history` or as an auditor saves them by hand.
Heads are posted at most once per 10 s per run and always at the run's end (`heads_to_post`).

Pure: no I/O. Reading Slack and the database is the adapters' part.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

EVENT_TYPE = "cutover_ledger_head"
MIN_GAP = timedelta(seconds=10)
_HASH = re.compile(r"^[0-9a-f]{64}$")


class WitnessInvalid(ValueError):
    """A witness file that cannot be read; the message names the line."""


@dataclass(frozen=True, slots=True, order=True)
class WitnessedHead:
    run: str
    seq: int
    hash: str

    def payload(self) -> dict[str, Any]:
        return {"run": self.run, "seq": self.seq, "hash": self.hash}


def to_line(head: WitnessedHead) -> str:
    """One witness line: compact JSON with sorted keys, so equal heads give equal lines."""
    return json.dumps(head.payload(), sort_keys=True, separators=(",", ":"))


def _problem(value: Any) -> tuple[WitnessedHead | None, str]:
    if not isinstance(value, Mapping):
        return None, "is not a JSON object"
    for key in ("run", "seq", "hash"):
        if key not in value:
            return None, f"has no {key}"
    run, seq, digest = value["run"], value["seq"], value["hash"]
    if not isinstance(run, str) or not run.strip():
        return None, ": run must be a run id"
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        return None, ": seq must be a whole number from 1"
    if not isinstance(digest, str) or not _HASH.match(digest):
        return None, ": hash must be 64 hex digits in lower case"
    return WitnessedHead(run, seq, digest), ""


def parse_lines(text: str) -> list[WitnessedHead]:
    """The heads in a witness file, in file order; blank lines are skipped."""
    heads = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            raise WitnessInvalid(f"line {number} is not JSON") from None
        head, problem = _problem(value)
        if head is None:
            joint = "" if problem.startswith(":") else " "
            raise WitnessInvalid(f"line {number}{joint}{problem}")
        heads.append(head)
    return heads


def due(last_posted: datetime | None, at: datetime) -> bool:
    """Whether a head at `at` is posted, the last one having been posted at `last_posted`."""
    return last_posted is None or at - last_posted >= MIN_GAP


def heads_to_post(run: str, entries: Iterable[tuple[int, datetime, str]]) -> list[WitnessedHead]:
    """The heads the bot posts for a chain's `(seq, at, hash)` entries in order.

    A head after an entry at least MIN_GAP after the last one posted, and the last head always
    (the run's end): a burst of entries costs Slack one post, and the final state is never lost.
    """
    posted: list[WitnessedHead] = []
    last_at: datetime | None = None
    final: WitnessedHead | None = None
    for seq, at, digest in entries:
        final = WitnessedHead(run, seq, digest)
        if due(last_at, at):
            posted.append(final)
            last_at = at
    if final is not None and (not posted or posted[-1] != final):
        posted.append(final)
    return posted


def message_metadata(head: WitnessedHead) -> dict[str, Any]:
    """Slack message metadata carrying the head (chat.postMessage / chat.update `metadata`)."""
    return {"event_type": EVENT_TYPE, "event_payload": head.payload()}


def from_message(message: Mapping[str, Any]) -> WitnessedHead | None:
    """The head a message from `conversations.history` carries, or None."""
    metadata = message.get("metadata")
    if not isinstance(metadata, Mapping) or metadata.get("event_type") != EVENT_TYPE:
        return None
    head, _ = _problem(metadata.get("event_payload"))
    return head


def witness_problem(head: WitnessedHead, hashes: Mapping[int, str]) -> str | None:
    """Why the chain with these `{seq: hash}` entries does not contain `head`, or None if it does."""
    if not hashes:
        return "the run has no ledger entries"
    stored = hashes.get(head.seq)
    if stored is None:
        last = max(hashes)
        return f"the chain ends at seq {last}" if head.seq > last else f"entry {head.seq} is missing"
    if stored != head.hash:
        return f"entry {head.seq} has a different hash ({stored[:12]}… stored, {head.hash[:12]}… witnessed)"
    return None


def describe_problem(head: WitnessedHead, problem: str) -> str:
    return f"run {head.run}: the witnessed head at seq {head.seq} is not in the ledger: {problem}"
