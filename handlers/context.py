"""Loading a run for a use case, and writing back what the domain decided, in one transaction.

Every use case on a run goes through `handlers.flow.on_run`: it locks the run row (see store.uow), loads the
plan, the authoritative packet, the roster of acting users and the engine state, and at the end
writes the new state, the ledger entries and the outbox rows together. A refusal writes one
ledger entry and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from packets.authority import Roster
from packets.engine.progress import RunProgress
from packets.packet import Packet
from packets.pending import PendingChange, apply_all
from packets.plan import Plan
from packets.plan_load import load_plan
from packets.redact import redact_data
from packets.timeline import Facts
from store.errors import StoreError
from store.packets import PacketRow
from store.plans import PlanRow
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
    # released holds) and the users acting for each role now. What people reported since waits
    # in `changes`, one entry each, until a packet carrying it is adopted (packets.pending).
    facts: Facts
    acting: dict[str, str]
    now: datetime
    changes: tuple[PendingChange, ...] = ()
    # The number the next reported change gets (never reused, even after a rejection).
    next_change: int = 1
    # The room was told the forecast end passes the window end (told once; again once it fits).
    overrun_told: bool = False
    # Requests people made that a later click answers once (rollback confirmations), by id.
    requests: dict[str, Any] = field(default_factory=dict)

    @property
    def working_facts(self) -> Facts:
        """What a new proposal builds on: the adopted facts with every pending change applied."""
        return apply_all(self.facts, self.acting, self.changes)[0]

    @property
    def working_acting(self) -> dict[str, str]:
        """Who would act for each role once every pending delegate switch is adopted."""
        return apply_all(self.facts, self.acting, self.changes)[1]

    def report(self, **change: Any) -> PendingChange:
        """Keep one reported change apart, numbered, until a packet carrying it is adopted."""
        added = PendingChange(seq=self.next_change, by=change.pop("by"), at=self.now, **change)
        self.changes = (*self.changes, added)
        self.next_change += 1
        return added

    def make_true(self, changes: tuple[PendingChange, ...]) -> None:
        """`changes` take effect (their packet was adopted, or no packet needs to carry them)."""
        taken = {c.seq for c in changes}
        self.facts, self.acting = apply_all(self.facts, self.acting, changes)
        self.changes = tuple(c for c in self.changes if c.seq not in taken)

    def record_fact(self, change: Callable[[Facts], Facts]) -> None:
        """A fact of the world (a checkpoint done, a hold released): true for every version."""
        self.facts = change(self.facts)

    def local_time(self, at: datetime | None) -> str:
        """`HH:MM` in the plan window's offset, as the war room reads its timeline."""
        return at.astimezone(self.plan.window.start.tzinfo).strftime("%H:%M") if at is not None else "?"

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
    return (await load_many(tx, [run], now)).get(run)


async def load_many(tx: Transaction, runs: Sequence[str], now: datetime) -> dict[str, RunContext]:
    """`load` for several runs in three statements at most (plans are cached): the runs that
    exist, by id."""
    found = await tx.runs.get_many(runs)
    rows = [found[run] for run in runs if run in found]
    packet_rows = await tx.packets.get_many([(r.run_id, r.authoritative_version or 1) for r in rows])
    return {
        row.run_id: _context(
            tx,
            row,
            await tx.plans.get(row.plan_revision),
            packet_rows.get((row.run_id, row.authoritative_version or 1)),
            now,
        )
        for row in rows
    }


def _context(
    tx: Transaction, row: RunRow, plan_row: PlanRow | None, packet_row: PacketRow | None, now: datetime
) -> RunContext:
    if plan_row is None or packet_row is None:
        # open_run writes the plan, the run and packet v1 in one transaction: this is damage.
        raise StoreError(f"run {row.run_id} has lost its plan revision or its authoritative packet")
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
        changes=tuple(PendingChange.from_json(c) for c in stored.get("changes", ())),
        next_change=int(stored.get("next_change", 1)),
        overrun_told=bool(stored.get("overrun_told", False)),
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
    stored: dict[str, Any] = {"engine": ctx.progress.as_json(), "facts": ctx.facts.as_json()}
    # Left out while they hold their defaults, so a run saved without a change stores exactly
    # what `handlers.runs.create_run` wrote.
    if ctx.changes:
        stored["changes"] = [c.as_json() for c in ctx.changes]
    if ctx.next_change != 1:
        stored["next_change"] = ctx.next_change
    if ctx.overrun_told:
        stored["overrun_told"] = True
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
