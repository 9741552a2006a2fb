from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from store.errors import RunExists, StaleWrite
from store.uow import UnitOfWork

MakeRun = Callable[..., Awaitable[str]]
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


async def test_a_created_run_reads_back_with_its_progress_and_acting_users(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run("r-payments-7", channel="C0ROOM")
    async with uow.transaction() as tx:
        run = await tx.runs.get(run_id)
    assert run is not None
    assert (run.run_id, run.plan_id, run.plan_revision, run.channel) == (
        "r-payments-7",
        "payments",
        "a" * 64,
        "C0ROOM",
    )
    assert (run.state, run.progress, run.acting) == (
        "running",
        {"state": "running"},
        {"release-authority": "U0REL1"},
    )
    assert (run.authoritative_version, run.lock_version) == (None, 0)
    assert run.created_at == run.updated_at == T0
    assert run.active


async def test_an_unknown_run_reads_as_none(uow: UnitOfWork) -> None:
    async with uow.transaction() as tx:
        assert await tx.runs.get("r-unknown") is None


async def test_a_run_id_can_be_used_only_once(uow: UnitOfWork, make_run: MakeRun) -> None:
    await make_run("r-1")
    with pytest.raises(RunExists):
        await make_run("r-1")


async def test_active_runs_leave_out_completed_rolled_back_and_aborted_ones(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    for n, state in enumerate(["running", "completed", "rolled_back", "aborted", "paused"]):
        await make_run(f"r-{n}", channel=f"C{n}", state=state, at=T0 + timedelta(minutes=n))
    async with uow.transaction() as tx:
        assert [r.run_id for r in await tx.runs.active()] == ["r-0", "r-4"]


async def test_the_active_run_of_a_channel_is_the_newest_one_not_finished(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    await make_run("r-old", channel="C1", state="completed", at=T0)
    await make_run("r-new", channel="C1", state="running", at=T0 + timedelta(hours=1))
    await make_run("r-other", channel="C2", state="running", at=T0 + timedelta(hours=2))
    async with uow.transaction() as tx:
        found = await tx.runs.active_in_channel("C1")
        assert found is not None and found.run_id == "r-new"
        assert await tx.runs.active_in_channel("C3") is None


async def test_saving_a_run_writes_its_fields_and_advances_its_lock_version(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    later = T0 + timedelta(minutes=5)
    async with uow.transaction(run_id=run_id) as tx:
        run = await tx.runs.require(run_id)
        changed = replace(run, state="paused", progress={"p": 1}, acting={"r": "U2"}, authoritative_version=2)
        saved = await tx.runs.save(changed, at=later)
    assert saved.lock_version == 1
    async with uow.transaction() as tx:
        reread = await tx.runs.require(run_id)
    assert reread == saved
    assert (reread.state, reread.progress, reread.acting, reread.authoritative_version) == (
        "paused",
        {"p": 1},
        {"r": "U2"},
        2,
    )
    assert reread.updated_at == later and reread.created_at == T0


async def test_saving_takes_updated_at_from_the_row_when_no_time_is_given(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    later = T0 + timedelta(minutes=9)
    async with uow.transaction(run_id=run_id) as tx:
        run = await tx.runs.require(run_id)
        saved = await tx.runs.save(replace(run, updated_at=later), expected_lock_version=run.lock_version)
    assert saved.updated_at == later


async def test_a_save_from_a_stale_read_raises_stale_write_and_changes_nothing(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    async with uow.transaction() as tx:
        stale = await tx.runs.require(run_id)
    async with uow.transaction(run_id=run_id) as tx:
        await tx.runs.save(replace(stale, state="paused"), at=T0)
    with pytest.raises(StaleWrite) as raised:
        async with uow.transaction(run_id=run_id) as tx:
            await tx.runs.save(replace(stale, state="frozen"), at=T0)
    assert raised.value.expected_lock_version == 0
    async with uow.transaction() as tx:
        run = await tx.runs.require(run_id)
    assert (run.state, run.lock_version) == ("paused", 1)


async def test_an_explicit_expected_lock_version_overrides_the_rows_own(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    async with uow.transaction(run_id=run_id) as tx:
        run = await tx.runs.require(run_id)
        with pytest.raises(StaleWrite):
            await tx.runs.save(run, at=T0, expected_lock_version=5)


async def test_a_second_active_run_in_one_channel_is_refused_by_the_database(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    await make_run("r-first", channel="C1", state="held")
    with pytest.raises(RunExists):
        await make_run("r-second", channel="C1", state="awaiting_signoff", plan_revision="b" * 64)
    await make_run("r-elsewhere", channel="C2", state="running", plan_revision="c" * 64)
    async with uow.transaction() as tx:
        assert sorted(r.run_id for r in await tx.runs.active()) == ["r-elsewhere", "r-first"]


@pytest.mark.parametrize("ended", ["completed", "rolled_back", "aborted", "superseded"])
async def test_a_channel_whose_run_has_ended_takes_a_new_run(
    uow: UnitOfWork, make_run: MakeRun, ended: str
) -> None:
    await make_run("r-first", channel="C1", state=ended)
    await make_run("r-next", channel="C1", state="awaiting_signoff", plan_revision="b" * 64)
    async with uow.transaction() as tx:
        found = await tx.runs.active_in_channel("C1")
    assert found is not None and found.run_id == "r-next"


async def test_saves_held_back_for_locked_runs_are_written_together_at_flush(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    first, second = await make_run("r-1"), await make_run("r-2", channel="C0OTHER")
    later = T0 + timedelta(minutes=3)
    async with uow.transaction(runs=[second, first, "r-gone"]) as tx:
        locked = await tx.runs.get_many([first, second, "r-gone"])
        assert set(locked) == {first, second}, "a run that does not exist is simply not locked"
        tx.runs.defer_saves()
        once = await tx.runs.save(replace(locked[first], state="paused"), at=later)
        twice = await tx.runs.save(replace(once, state="frozen"), at=later)
        await tx.runs.save(replace(locked[second], progress={"p": 2}), at=later)
        assert (await tx.runs.get(first)) == twice, "the transaction reads its own held-back save"
        await tx.runs.flush()
    async with uow.transaction(read_only=True) as tx:
        stored = await tx.runs.get_many([first, second])
    assert (stored[first].state, stored[first].lock_version, stored[first].updated_at) == ("frozen", 2, later)
    assert (stored[second].progress, stored[second].lock_version) == ({"p": 2}, 1)


async def test_a_held_back_save_from_a_stale_read_raises_stale_write(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    async with uow.transaction() as tx:
        stale = await tx.runs.require(run_id)
    async with uow.transaction(run_id=run_id) as tx:
        await tx.runs.save(replace(stale, state="paused"), at=T0)
    with pytest.raises(StaleWrite):
        async with uow.transaction(runs=[run_id]) as tx:
            tx.runs.defer_saves()
            await tx.runs.save(replace(stale, state="frozen"), at=T0)
