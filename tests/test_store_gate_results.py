from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from store.uow import UnitOfWork

MakeRun = Callable[..., Awaitable[str]]
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


async def record(
    uow: UnitOfWork,
    run_id: str,
    *,
    gate: str = "auth-success",
    slot: int = 1,
    outcome: str = "pass",
    value: float | None = 0.998,
) -> bool:
    async with uow.transaction() as tx:
        return await tx.gate_results.record(
            run_id=run_id,
            checkpoint="canary-a",
            gate=gate,
            slot=slot,
            outcome=outcome,
            value=value,
            reason="",
            at=T0 + timedelta(minutes=slot),
            packet_version=2,
        )


async def test_a_slot_is_recorded_once_and_the_second_recorder_is_told(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    assert await record(uow, run_id, slot=1)
    assert not await record(uow, run_id, slot=1, outcome="fail", value=0.5)
    assert await record(uow, run_id, slot=2)
    assert await record(uow, run_id, slot=1, gate="lookup-latency-p95", value=None, outcome="no-data")
    async with uow.transaction() as tx:
        rows = await tx.gate_results.for_checkpoint(run_id, "canary-a", gate="auth-success")
    assert [(r.slot, r.outcome, r.value, r.packet_version) for r in rows] == [
        (1, "pass", 0.998, 2),
        (2, "pass", 0.998, 2),
    ]


async def test_replicas_ticking_the_same_slot_at_once_act_on_it_exactly_once(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    results = await asyncio.gather(*(record(uow, run_id, slot=7) for _ in range(10)))
    assert results.count(True) == 1


async def test_the_latest_slots_of_a_gate_come_newest_first(uow: UnitOfWork, make_run: MakeRun) -> None:
    run_id = await make_run()
    for slot, outcome in ((1, "fail"), (2, "pass"), (3, "pass"), (4, "pass")):
        await record(uow, run_id, slot=slot, outcome=outcome)
    await record(uow, run_id, slot=5, gate="other")
    async with uow.transaction() as tx:
        latest = await tx.gate_results.latest(run_id, "canary-a", "auth-success", limit=3)
        every = await tx.gate_results.for_run(run_id)
        by_checkpoint = await tx.gate_results.for_checkpoint(run_id, "canary-a")
    assert [(r.slot, r.outcome) for r in latest] == [(4, "pass"), (3, "pass"), (2, "pass")]
    assert [r.slot for r in every] == [1, 2, 3, 4, 5]
    assert [(r.slot, r.gate) for r in by_checkpoint][-1] == (5, "other")
    assert every[0].at == T0 + timedelta(minutes=1)
