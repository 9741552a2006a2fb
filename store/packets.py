"""Command packet versions: every version of every run, inserted once and never overwritten.

Only the state (proposed -> authoritative -> superseded, or rejected) and the Slack message the
version was posted as ever change, each through a narrow update. The body is the packet's JSON as
the domain produced it; the `state` column, not any state inside the body, is the truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from store.sql import insert_unless_exists
from store.tables import packets


@dataclass(frozen=True, slots=True)
class PacketRow:
    run_id: str
    version: int
    state: str
    hash: str
    body: dict[str, Any]
    reason: str
    supersedes: int | None
    created_at: datetime
    state_changed_at: datetime
    slack_channel: str | None
    slack_ts: str | None

    def document(self) -> dict[str, Any]:
        """The body with the current state and hash, the shape `Packet.from_json` reads."""
        return {**self.body, "state": self.state, "hash": self.hash}


def _row(mapping: Any) -> PacketRow:
    return PacketRow(
        run_id=mapping["run_id"],
        version=mapping["version"],
        state=mapping["state"],
        hash=mapping["hash"],
        body=dict(mapping["body"]),
        reason=mapping["reason"],
        supersedes=mapping["supersedes"],
        created_at=mapping["created_at"],
        state_changed_at=mapping["state_changed_at"],
        slack_channel=mapping["slack_channel"],
        slack_ts=mapping["slack_ts"],
    )


class Packets:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        # Each run's highest version as `read_latest` found it, for `latest` to answer without a
        # query; forgotten for a run as soon as this transaction adds or changes one of its versions.
        self._latest: dict[str, PacketRow | None] = {}

    async def get_many(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], PacketRow]:
        """Several (run, version) rows in one statement; the ones that exist, by key."""
        if not keys:
            return {}
        statement = select(packets).where(tuple_(packets.c.run_id, packets.c.version).in_(list(set(keys))))
        rows = [_row(m) for m in (await self._connection.execute(statement)).mappings()]
        return {(r.run_id, r.version): r for r in rows}

    async def read_latest(self, run_ids: Sequence[str]) -> None:
        """Read the highest version of each run in one statement, so that `latest` needs none."""
        highest = (
            select(packets.c.run_id, func.max(packets.c.version).label("version"))
            .where(packets.c.run_id.in_(sorted(set(run_ids))))
            .group_by(packets.c.run_id)
            .subquery()
        )
        statement = select(packets).join(
            highest, (packets.c.run_id == highest.c.run_id) & (packets.c.version == highest.c.version)
        )
        found = {m["run_id"]: _row(m) for m in (await self._connection.execute(statement)).mappings()}
        self._latest.update({run: found.get(run) for run in run_ids})

    async def add(
        self,
        *,
        run_id: str,
        version: int,
        state: str,
        hash: str,
        body: dict[str, Any],
        reason: str,
        supersedes: int | None,
        at: datetime,
    ) -> bool:
        """Store a new version; False (nothing written) when that version already exists."""
        values = {
            "run_id": run_id,
            "version": version,
            "state": state,
            "hash": hash,
            "body": body,
            "reason": reason,
            "supersedes": supersedes,
            "created_at": at,
            "state_changed_at": at,
        }
        self._latest.pop(run_id, None)
        return await insert_unless_exists(self._connection, packets, values)

    async def get(self, run_id: str, version: int) -> PacketRow | None:
        statement = select(packets).where(packets.c.run_id == run_id, packets.c.version == version)
        mapping = (await self._connection.execute(statement)).mappings().first()
        return None if mapping is None else _row(mapping)

    async def authoritative(self, run_id: str) -> PacketRow | None:
        """The version the run follows now (the newest authoritative one, should there be two)."""
        rows = await self.in_state(run_id, "authoritative")
        return rows[-1] if rows else None

    async def latest(self, run_id: str) -> PacketRow | None:
        """The highest version, whatever its state."""
        if run_id in self._latest:
            return self._latest[run_id]
        statement = (
            select(packets).where(packets.c.run_id == run_id).order_by(packets.c.version.desc()).limit(1)
        )
        mapping = (await self._connection.execute(statement)).mappings().first()
        return None if mapping is None else _row(mapping)

    async def in_state(self, run_id: str, state: str) -> list[PacketRow]:
        statement = (
            select(packets)
            .where(packets.c.run_id == run_id, packets.c.state == state)
            .order_by(packets.c.version)
        )
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]

    async def for_run(self, run_id: str) -> list[PacketRow]:
        """Every version of the run, oldest first."""
        statement = select(packets).where(packets.c.run_id == run_id).order_by(packets.c.version)
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]

    async def set_state_cas(
        self, run_id: str, version: int, *, from_state: str, to_state: str, at: datetime
    ) -> bool:
        """Move a version from `from_state` to `to_state`; False when it is no longer in `from_state`."""
        self._latest.pop(run_id, None)
        statement = (
            update(packets)
            .where(packets.c.run_id == run_id, packets.c.version == version, packets.c.state == from_state)
            .values(state=to_state, state_changed_at=at)
            .returning(packets.c.version)
        )
        return (await self._connection.execute(statement)).first() is not None

    async def set_message(self, run_id: str, version: int, *, channel: str, ts: str) -> bool:
        """Remember the Slack message a version was posted as, so it can be updated in place later."""
        self._latest.pop(run_id, None)
        statement = (
            update(packets)
            .where(packets.c.run_id == run_id, packets.c.version == version)
            .values(slack_channel=channel, slack_ts=ts)
            .returning(packets.c.version)
        )
        return (await self._connection.execute(statement)).first() is not None
