"""The ledger: append-only, one hash chain per run.

Each entry is `{seq, at, run, actor, kind, payload}` with `seq` counting 1..n per run, and
`hash = sha256(prev_hash + canonical_json(entry))`, the first `prev_hash` being 64 zeros. The
payload is stored as the exact canonical JSON text that was hashed. This module only ever
inserts ledger rows; nothing in the code base updates or deletes one.

`ledger_heads` keeps the last seq and hash of each chain. Appends lock that row, so entries of one
run are numbered strictly in order even from several replicas, and verification compares against
it, so rows cut off the end of a chain are noticed too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, union, update
from sqlalchemy.ext.asyncio import AsyncConnection

# The chain's arithmetic is pure: an exported evidence file is checked by it too (re-exported).
from packets.chain import GENESIS as GENESIS
from packets.chain import chain_hash as chain_hash
from packets.chain import entry_body as entry_body
from packets.plan import canonical_json
from store.columns import utc
from store.sql import insert_unless_exists
from store.tables import ledger, ledger_heads


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    run_id: str
    seq: int
    at: datetime
    actor: str
    kind: str
    payload: Any
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        return entry_body(
            seq=self.seq,
            at=self.at,
            run_id=self.run_id,
            actor=self.actor,
            kind=self.kind,
            payload=self.payload,
        )


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A ledger row exactly as read, payload still as text: what verification checks."""

    run_id: str
    seq: int
    at: datetime
    actor: str
    kind: str
    payload_text: str
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainHead:
    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    run_id: str
    entries: int
    # The first sequence number that does not verify, or None when the whole chain holds.
    broken_at: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None

    def describe(self) -> str:
        if self.ok:
            return f"run {self.run_id}: {self.entries} entries verified"
        return f"run {self.run_id}: ledger broken at seq {self.broken_at}: {self.problem}"


def check_chain(run_id: str, rows: Sequence[StoredEntry], head: ChainHead | None) -> ChainVerdict:
    """Verify one chain: rows in seq order, `head` as recorded. Pure: no database needed."""
    prev_hash = GENESIS
    expected = 1
    for row in rows:
        if row.seq != expected:
            if row.seq > expected:
                return ChainVerdict(run_id, len(rows), expected, f"entry {expected} is missing")
            return ChainVerdict(run_id, len(rows), row.seq, f"unexpected seq {row.seq}, wanted {expected}")
        if row.prev_hash != prev_hash:
            return ChainVerdict(run_id, len(rows), row.seq, "does not link to the entry before it")
        try:
            payload = json.loads(row.payload_text)
        except ValueError:
            return ChainVerdict(run_id, len(rows), row.seq, "payload is not JSON")
        if canonical_json(payload) != row.payload_text:
            return ChainVerdict(run_id, len(rows), row.seq, "payload is not the text that was hashed")
        body = entry_body(
            seq=row.seq, at=row.at, run_id=row.run_id, actor=row.actor, kind=row.kind, payload=payload
        )
        if chain_hash(prev_hash, body) != row.hash:
            return ChainVerdict(run_id, len(rows), row.seq, "hash does not match the entry's content")
        prev_hash = row.hash
        expected += 1
    last = expected - 1
    if head is None:
        if rows:
            return ChainVerdict(run_id, len(rows), 1, "chain has no recorded head")
        return ChainVerdict(run_id, 0)
    if head.seq > last:
        return ChainVerdict(
            run_id, len(rows), last + 1, f"entry {last + 1} is missing (head is at {head.seq})"
        )
    if head.seq < last:
        return ChainVerdict(run_id, len(rows), head.seq + 1, f"entries past the recorded head ({head.seq})")
    if head.hash != prev_hash:
        return ChainVerdict(run_id, len(rows), max(last, 1), "last entry differs from the recorded head")
    return ChainVerdict(run_id, len(rows))


def _stored(mapping: Any) -> StoredEntry:
    return StoredEntry(
        run_id=mapping["run_id"],
        seq=mapping["seq"],
        at=mapping["at"],
        actor=mapping["actor"],
        kind=mapping["kind"],
        payload_text=mapping["payload"],
        prev_hash=mapping["prev_hash"],
        hash=mapping["hash"],
    )


def _entry(stored: StoredEntry) -> LedgerEntry:
    return LedgerEntry(
        run_id=stored.run_id,
        seq=stored.seq,
        at=stored.at,
        actor=stored.actor,
        kind=stored.kind,
        payload=json.loads(stored.payload_text),
        prev_hash=stored.prev_hash,
        hash=stored.hash,
    )


class Ledger:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        # Each chain's head as this transaction's appends left it: whether (and how far) a use case
        # moved the run, known without reading the head back.
        self._written: dict[str, ChainHead] = {}

    def written_head(self, run_id: str) -> ChainHead | None:
        """The head after this transaction's last append to the run's chain; None if it appended none."""
        return self._written.get(run_id)

    async def append(self, *, run_id: str, actor: str, kind: str, payload: Any, at: datetime) -> LedgerEntry:
        """Append one entry to the run's chain, in the caller's transaction."""
        await insert_unless_exists(
            self._connection, ledger_heads, {"run_id": run_id, "seq": 0, "hash": GENESIS}
        )
        # Row lock on PostgreSQL: concurrent appends to one chain queue here, never fork it.
        locked = select(ledger_heads).where(ledger_heads.c.run_id == run_id).with_for_update()
        head = (await self._connection.execute(locked)).mappings().one()
        seq = head["seq"] + 1
        payload_text = canonical_json(payload)
        # Hash what will be read back: the payload as its JSON text parses, `at` in UTC.
        stored_payload = json.loads(payload_text)
        at_utc = utc(at)
        digest = chain_hash(
            head["hash"],
            entry_body(seq=seq, at=at_utc, run_id=run_id, actor=actor, kind=kind, payload=stored_payload),
        )
        await self._connection.execute(
            insert(ledger).values(
                run_id=run_id,
                seq=seq,
                at=at_utc,
                actor=actor,
                kind=kind,
                payload=payload_text,
                prev_hash=head["hash"],
                hash=digest,
            )
        )
        await self._connection.execute(
            update(ledger_heads).where(ledger_heads.c.run_id == run_id).values(seq=seq, hash=digest)
        )
        self._written[run_id] = ChainHead(seq=seq, hash=digest)
        return LedgerEntry(
            run_id=run_id,
            seq=seq,
            at=at_utc,
            actor=actor,
            kind=kind,
            payload=stored_payload,
            prev_hash=head["hash"],
            hash=digest,
        )

    async def entries(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[LedgerEntry]:
        """The run's entries in order, starting after `after_seq`."""
        statement = (
            select(ledger).where(ledger.c.run_id == run_id, ledger.c.seq > after_seq).order_by(ledger.c.seq)
        )
        if limit is not None:
            statement = statement.limit(limit)
        return [_entry(_stored(m)) for m in (await self._connection.execute(statement)).mappings()]

    async def tail(self, run_id: str, count: int) -> list[LedgerEntry]:
        """The last `count` entries of the run, oldest of them first."""
        statement = select(ledger).where(ledger.c.run_id == run_id).order_by(ledger.c.seq.desc()).limit(count)
        rows = [_entry(_stored(m)) for m in (await self._connection.execute(statement)).mappings()]
        return rows[::-1]

    async def last_by(self, run_id: str, *, actor: str, kind: str) -> LedgerEntry | None:
        """The run's newest entry of `kind` written for `actor`, if any."""
        statement = (
            select(ledger)
            .where(ledger.c.run_id == run_id, ledger.c.actor == actor, ledger.c.kind == kind)
            .order_by(ledger.c.seq.desc())
            .limit(1)
        )
        found = (await self._connection.execute(statement)).mappings().first()
        return None if found is None else _entry(_stored(found))

    async def hashes(self, run_id: str) -> dict[int, str]:
        """Each entry's hash by seq: what a witnessed head is checked against."""
        statement = select(ledger.c.seq, ledger.c.hash).where(ledger.c.run_id == run_id)
        return {seq: digest for seq, digest in await self._connection.execute(statement)}

    async def head(self, run_id: str) -> ChainHead | None:
        statement = select(ledger_heads).where(ledger_heads.c.run_id == run_id)
        mapping = (await self._connection.execute(statement)).mappings().first()
        return None if mapping is None else ChainHead(seq=mapping["seq"], hash=mapping["hash"])

    async def chains(self) -> list[str]:
        """Every run id with a chain, including one whose rows were all removed."""
        statement = union(select(ledger.c.run_id), select(ledger_heads.c.run_id))
        return sorted(row[0] for row in await self._connection.execute(statement))

    async def verify(self, run_id: str) -> ChainVerdict:
        statement = select(ledger).where(ledger.c.run_id == run_id).order_by(ledger.c.seq)
        rows = [_stored(m) for m in (await self._connection.execute(statement)).mappings()]
        return check_chain(run_id, rows, await self.head(run_id))

    async def verify_all(self) -> list[ChainVerdict]:
        return [await self.verify(run_id) for run_id in await self.chains()]
