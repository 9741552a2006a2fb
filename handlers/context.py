"""Loading a run for a use case, and writing back what the domain decided, in one transaction.

Every use case on a run goes through `handlers.flow.on_run`: it locks the run row (see store.uow), loads the
plan, the authoritative packet, the roster of acting users and the engine state, and at the end
writes the new state, the ledger entries and the outbox rows together. A refusal writes one
ledger entry and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from packets.authority import Roster
from packets.engine.progress import RunProgress
from packets.packet import Packet
from packets.plan import Plan
from packets.plan_load import load_plan
from packets.redact import redact_data
from packets.timeline import Facts
from store.errors import StoreError
from store.runs import RunRow
from store.uow import Transaction


@lru_cache(maxsize=4096)
def plan_from_text(text: str, source: str) -> Plan:
    """Plans are immutable per revision; parse each text once per process."""
    return load_plan(text, source=source)


@dataclass
class RunContext:
    """Everything a use case needs about one run, loaded inside its transaction."""

    tx: Transaction
    row: RunRow
    plan: Plan
    packet: Packet
    progress: RunProgress
    # The facts the authoritative packet was built from (plus what happened since: done times,
    # released holds). A proposal's facts wait in `pending` until it is adopted; a rejected
    # proposal's facts are dropped with it.
    facts: Facts
    acting: dict[str, str]
    now: datetime
    pending: Facts | None = None
    # Requests people made that a later click answers once (rollback confirmations), by id.
    requests: dict[str, Any] = field(default_factory=dict)

    @property
    def working_facts(self) -> Facts:
        """What a new proposal builds on: the standing proposal's facts, else the adopted ones."""
        return self.pending if self.pending is not None else self.facts

    @working_facts.setter
    def working_facts(self, facts: Facts) -> None:
        if self.pending is not None:
            self.pending = facts
        else:
            self.facts = facts

    def record_fact(self, change: Callable[[Facts], Facts]) -> None:
        """A fact of the world (a checkpoint done, a hold released): true for every version."""
        self.facts = change(self.facts)
        if self.pending is not None:
            self.pending = change(self.pending)

    @property
    def run(self) -> str:
        return str(self.row.run_id)

    @property
    def roster(self) -> Roster:
        return Roster(self.plan.roles, self.acting)

    @property
    def version(self) -> int:
        return self.packet.version


async def load(tx: Transaction, run: str, now: datetime) -> RunContext | None:
    row = await tx.runs.get(run)
    if row is None:
        return None
    plan_row = await tx.plans.get(row.plan_revision)
    packet_row = await tx.packets.get(run, row.authoritative_version or 1)
    if plan_row is None or packet_row is None:
        # open_run writes the plan, the run and packet v1 in one transaction: this is damage.
        raise StoreError(f"run {run} has lost its plan revision or its authoritative packet")
    plan = plan_from_text(plan_row.content, plan_row.source)
    packet = Packet.from_json(packet_row.document())
    stored = row.progress
    return RunContext(
        tx=tx,
        row=row,
        plan=plan,
        packet=packet,
        progress=RunProgress.from_json(stored["engine"]),
        facts=Facts.from_json(stored.get("facts", {})),
        pending=Facts.from_json(stored["pending"]) if stored.get("pending") else None,
        acting=dict(row.acting),
        now=now,
        requests=dict(stored.get("requests") or {}),
    )


async def ledger(ctx: RunContext, *, actor: str, kind: str, payload: dict[str, Any]) -> None:
    """Append to the run's chain; every free text is redacted before it is hashed."""
    await ctx.tx.ledger.append(
        run_id=ctx.run, actor=actor, kind=kind, payload=redact_data(payload), at=ctx.now
    )


async def refuse(ctx: RunContext, *, user: str, action: str, reason: str) -> None:
    """A refused action leaves exactly one trace: a `refused` ledger entry."""
    await ledger(
        ctx,
        actor=user,
        kind="refused",
        payload={"action": action, "reason": reason, "current_version": ctx.version},
    )


async def save(ctx: RunContext, *, authoritative_version: int | None = None) -> None:
    """Write the run row back (compare-and-set on its lock version)."""
    stored = {
        "engine": ctx.progress.as_json(),
        "facts": ctx.facts.as_json(),
        "pending": ctx.pending.as_json() if ctx.pending is not None else None,
    }
    if ctx.requests:
        stored["requests"] = ctx.requests
    row = replace(
        ctx.row,
        progress=stored,
        state=str(ctx.progress.state),
        acting=dict(ctx.acting),
        authoritative_version=authoritative_version or ctx.row.authoritative_version,
    )
    ctx.row = await ctx.tx.runs.save(row, expected_lock_version=ctx.row.lock_version, at=ctx.now)
