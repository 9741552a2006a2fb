"""Gate results: one row per (run, checkpoint, gate, slot), where a slot is one scheduled tick.

The unique key is what makes gate ticks safe with several replicas: whoever records a slot first
acts on it; every other replica's `record` returns False and it does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from store.sql import insert_many_returning
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


@dataclass(frozen=True, slots=True)
class GateReading:
    """One gate's reading for its slot, as `GateResults.record_readings` takes it."""

    run_id: str
    checkpoint: str
    gate: str
    slot: int
    outcome: str
    value: float | None
    reason: str
    packet_version: int | None = None


# Rows per INSERT: nine parameters each, well under either database's limit on parameters.
_ROWS_PER_INSERT = 500


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
        reading = GateReading(
            run_id=run_id,
            checkpoint=checkpoint,
            gate=gate,
            slot=slot,
            outcome=outcome,
            value=value,
            reason=reason,
            packet_version=packet_version,
        )
        return bool(await self.record_readings([reading], at=at))

    async def record_readings(
        self, readings: Sequence[GateReading], *, at: datetime
    ) -> set[tuple[str, str, str]]:
        """`record` for many readings (of one run or many) in as few statements as the database
        allows: the (run, checkpoint, gate) of each recorded now. A reading whose slot is already
        recorded, by anyone, is left out."""
        recorded: set[tuple[str, str, str]] = set()
        for first in range(0, len(readings), _ROWS_PER_INSERT):
            rows = [
                {
                    "run_id": r.run_id,
                    "checkpoint": r.checkpoint,
                    "gate": r.gate,
                    "slot": r.slot,
                    "outcome": r.outcome,
                    "value": r.value,
                    "reason": r.reason,
                    "packet_version": r.packet_version,
                    "at": at,
                }
                for r in readings[first : first + _ROWS_PER_INSERT]
            ]
            keys = (gate_results.c.run_id, gate_results.c.checkpoint, gate_results.c.gate)
            inserted = await insert_many_returning(self._connection, gate_results, rows, *keys)
            recorded.update((run, checkpoint, gate) for run, checkpoint, gate in inserted)
        return recorded

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
