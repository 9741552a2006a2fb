from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import DBAPIError

from store.db import make_engine
from store.errors import NestedTransaction, RunNotFound
from store.uow import UnitOfWork

MakeRun = Callable[..., Awaitable[str]]
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
POSTGRES_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class Boom(Exception):
    pass


async def test_state_ledger_and_outbox_written_in_one_transaction_commit_together(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    async with uow.transaction(run_id=run_id) as tx:
        run = await tx.runs.require(run_id)
        await tx.runs.save(replace(run, state="paused"), at=T0)
        await tx.ledger.append(run_id=run_id, actor="U0ENG1", kind="paused", payload={"why": "drill"}, at=T0)
        await tx.outbox.enqueue(run_id=run_id, kind="paused", recipient="C0WARROOM", payload={}, at=T0)

    async with uow.transaction(read_only=True) as tx:
        assert (await tx.runs.require(run_id)).state == "paused"
        assert [e.kind for e in await tx.ledger.entries(run_id)] == ["paused"]
        assert [r.kind for r in await tx.outbox.pending()] == ["paused"]


async def test_a_rolled_back_transaction_leaves_no_ledger_or_outbox_rows(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    with pytest.raises(Boom):
        async with uow.transaction(run_id=run_id) as tx:
            run = await tx.runs.require(run_id)
            await tx.runs.save(replace(run, state="paused"), at=T0)
            await tx.ledger.append(run_id=run_id, actor="U0ENG1", kind="paused", payload={}, at=T0)
            await tx.outbox.enqueue(run_id=run_id, kind="paused", recipient="C0WARROOM", payload={}, at=T0)
            raise Boom

    async with uow.transaction(read_only=True) as tx:
        run = await tx.runs.require(run_id)
        assert (run.state, run.lock_version) == ("running", 0)
        assert await tx.ledger.entries(run_id) == []
        assert await tx.ledger.head(run_id) is None
        assert await tx.outbox.pending() == []
        assert (await tx.ledger.verify(run_id)).ok


async def test_a_transaction_on_a_run_that_does_not_exist_raises_run_not_found(uow: UnitOfWork) -> None:
    with pytest.raises(RunNotFound):
        async with uow.transaction(run_id="r-nope"):
            pass


async def test_use_cases_on_one_run_never_interleave(uow: UnitOfWork, make_run: MakeRun) -> None:
    run_id = await make_run()

    async def bump() -> None:
        async with uow.transaction(run_id=run_id) as tx:
            run = await tx.runs.require(run_id)
            await asyncio.sleep(0.001)  # give every other task the chance to barge in
            counted = run.progress.get("count", 0) + 1
            await tx.runs.save(replace(run, progress={"count": counted}), at=T0)

    await asyncio.gather(*(bump() for _ in range(20)))

    async with uow.transaction(read_only=True) as tx:
        run = await tx.runs.require(run_id)
    assert run.progress == {"count": 20}
    assert run.lock_version == 20


async def test_a_read_only_transaction_refuses_to_write(uow: UnitOfWork) -> None:
    with pytest.raises(DBAPIError, match=r"(?i)read.?only"):
        async with uow.transaction(read_only=True) as tx:
            await tx.plans.add(revision="c" * 64, plan_id="p", content="x", at=T0)


async def test_a_read_only_transaction_leaves_its_connection_writable_for_the_next_one(
    uow: UnitOfWork,
) -> None:
    for _ in range(3):
        async with uow.transaction(read_only=True) as tx:
            await tx.runs.active()
        async with uow.transaction() as tx:
            assert await tx.plans.add(revision=f"{_}" * 64, plan_id="p", content="x", at=T0)


async def test_a_read_only_transaction_does_not_wait_for_a_writer(uow: UnitOfWork, make_run: MakeRun) -> None:
    run_id = await make_run()
    writer_inside = asyncio.Event()
    reader_done = asyncio.Event()

    async def writer() -> None:
        async with uow.transaction(run_id=run_id) as tx:
            await tx.ledger.append(run_id=run_id, actor="U1", kind="k", payload={}, at=T0)
            writer_inside.set()
            await asyncio.wait_for(reader_done.wait(), timeout=30)

    async def reader() -> None:
        await writer_inside.wait()
        async with uow.transaction(read_only=True) as tx:
            # The writer has not committed: its entry is not visible, and we did not wait for it.
            assert await tx.ledger.entries(run_id) == []
        reader_done.set()

    await asyncio.gather(writer(), reader())


async def test_a_read_only_transaction_cannot_take_a_run_lock(uow: UnitOfWork) -> None:
    with pytest.raises(ValueError, match="read-only"):
        async with uow.transaction(run_id="r-1", read_only=True):
            pass


@POSTGRES_ONLY
async def test_two_runs_lock_independently_on_postgresql(uow: UnitOfWork, make_run: MakeRun) -> None:
    first, second = await make_run("r-a"), await make_run("r-b")
    first_locked = asyncio.Event()
    second_done = asyncio.Event()

    async def hold_first() -> None:
        async with uow.transaction(run_id=first):
            first_locked.set()
            await asyncio.wait_for(second_done.wait(), timeout=30)

    async def use_second() -> None:
        await first_locked.wait()
        async with uow.transaction(run_id=second) as tx:
            await tx.ledger.append(run_id=second, actor="U1", kind="k", payload={}, at=T0)
        second_done.set()

    await asyncio.gather(hold_first(), use_second())


@SQLITE_ONLY
async def test_two_units_of_work_on_one_sqlite_file_share_its_writer_lock(database_url: str) -> None:
    first, second = UnitOfWork(make_engine(database_url)), UnitOfWork(make_engine(database_url))
    try:

        async def add(unit_of_work: UnitOfWork, n: int) -> None:
            async with unit_of_work.transaction() as tx:
                await tx.plans.add(revision=f"{n:064d}", plan_id="p", content="x", at=T0)
                await asyncio.sleep(0.001)

        await asyncio.gather(*(add(first if n % 2 else second, n) for n in range(30)))
        async with first.transaction(read_only=True) as tx:
            assert len(await tx.plans.for_plan("p")) == 30
    finally:
        await first.dispose()
        await second.dispose()


async def test_the_unit_of_work_names_its_dialect(uow: UnitOfWork) -> None:
    assert uow.dialect in ("sqlite", "postgresql")


async def test_a_transaction_on_a_run_opened_inside_one_on_the_same_run_raises_instead_of_hanging(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    async with uow.transaction(run_id=run_id):
        with pytest.raises(NestedTransaction):
            async with asyncio.timeout(5), uow.transaction(run_id=run_id):
                pass


async def test_the_same_run_can_be_used_again_once_its_transaction_ended(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    for _ in range(2):
        async with uow.transaction(run_id=run_id) as tx:
            assert tx.run_id == run_id


async def test_tasks_stopped_between_transactions_finish_the_one_they_are_in_and_are_cut_outside_one(
    uow: UnitOfWork,
) -> None:
    revision = "9" * 64
    inside, go_on = asyncio.Event(), asyncio.Event()

    async def writing() -> None:
        async with uow.transaction() as tx:
            inside.set()
            await go_on.wait()
            await tx.plans.add(revision=revision, plan_id="p", content="plan: p\n", at=datetime.now(UTC))
        await asyncio.Event().wait()  # what it would do next: cut here

    async def idle() -> None:
        await asyncio.Event().wait()

    writer, waiter = asyncio.create_task(writing()), asyncio.create_task(idle())
    await inside.wait()
    stopping = asyncio.create_task(uow.cancel_between_transactions([writer, waiter], within=30))
    await asyncio.wait({waiter}, timeout=10)

    assert waiter.cancelled() and not writer.done(), "outside a transaction: cut at once"
    go_on.set()
    await stopping
    assert writer.cancelled()
    async with uow.transaction(read_only=True) as tx:
        assert await tx.plans.get(revision) is not None, "the transaction it was in committed"
