"""Gate results: one row per (run, checkpoint, gate, slot), where a slot is one scheduled tick.

The unique key is what makes gate ticks safe with several replicas: whoever records a slot first
acts on it; every other replica's `record` returns False and it does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from store.sql import insert_unless_exists
from store.tables import gate_results


@dataclass(frozen=True, slots=True)
class GateResultRow:
    id: int
    run_id: str
    checkpoint: str
    gate: str
    slot: int
    outcome: str
    value: float | None
    reason: str
    packet_version: int | None
    at: datetime


def _row(mapping: Any) -> GateResultRow:
    return GateResultRow(
        id=mapping["id"],
        run_id=mapping["run_id"],
        checkpoint=mapping["checkpoint"],
        gate=mapping["gate"],
        slot=mapping["slot"],
        outcome=mapping["outcome"],
        value=mapping["value"],
        reason=mapping["reason"],
        packet_version=mapping["packet_version"],
        at=mapping["at"],
    )


class GateResults:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def record(
        self,
        *,
        run_id: str,
        checkpoint: str,
        gate: str,
        slot: int,
        outcome: str,
        value: float | None,
        reason: str,
        at: datetime,
        packet_version: int | None = None,
    ) -> bool:
        """Record the result of one slot; False when that slot is already recorded (by anyone)."""
        values = {
            "run_id": run_id,
            "checkpoint": checkpoint,
            "gate": gate,
            "slot": slot,
            "outcome": outcome,
            "value": value,
            "reason": reason,
            "packet_version": packet_version,
            "at": at,
        }
        return await insert_unless_exists(self._connection, gate_results, values)

    async def for_checkpoint(
        self, run_id: str, checkpoint: str, *, gate: str | None = None
    ) -> list[GateResultRow]:
        """Results of one checkpoint (optionally one gate), oldest slot first."""
        statement = select(gate_results).where(
            gate_results.c.run_id == run_id, gate_results.c.checkpoint == checkpoint
        )
        if gate is not None:
            statement = statement.where(gate_results.c.gate == gate)
        statement = statement.order_by(gate_results.c.slot, gate_results.c.gate)
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]

    async def latest(self, run_id: str, checkpoint: str, gate: str, *, limit: int) -> list[GateResultRow]:
        """The `limit` most recent slots of one gate, newest first (for consecutive-pass counting)."""
        statement = (
            select(gate_results)
            .where(
                gate_results.c.run_id == run_id,
                gate_results.c.checkpoint == checkpoint,
                gate_results.c.gate == gate,
            )
            .order_by(gate_results.c.slot.desc())
            .limit(limit)
        )
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]

    async def for_run(self, run_id: str) -> list[GateResultRow]:
        """Every result of the run in the order recorded."""
        statement = select(gate_results).where(gate_results.c.run_id == run_id).order_by(gate_results.c.id)
        return [_row(m) for m in (await self._connection.execute(statement)).mappings()]
