from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from packets.packet import HoldSource, Packet, PacketHold, PacketState, PlannedCheckpoint
from store.uow import UnitOfWork

MakeRun = Callable[..., Awaitable[str]]
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def packet(version: int, *, supersedes: int | None = None) -> Packet:
    start = datetime(2026, 11, 24, 21, 0, tzinfo=UTC) + timedelta(minutes=version)
    checkpoint = PlannedCheckpoint(
        id="key-replication",
        title="Key replication confirmed — ünïcode kept",
        owner_role="release-eng",
        owner_user="U0ENG1",
        observer_roles=("security",),
        observer_users=("U0SEC1",),
        start=start,
        end=start + timedelta(minutes=15),
        protected=True,
    )
    hold = PacketHold(
        checkpoint="widen",
        reason="release to widen",
        source=HoldSource.PLAN,
        release_by=("release-authority",),
    )
    return Packet(
        version=version,
        plan_revision="a" * 64,
        timeline=(checkpoint,),
        holds=(hold,),
        reason=f"version {version}",
        supersedes=supersedes,
    )


async def add(uow: UnitOfWork, run_id: str, value: Packet, *, at: datetime = T0) -> bool:
    async with uow.transaction(run_id=run_id) as tx:
        return await tx.packets.add(
            run_id=run_id,
            version=value.version,
            state=str(value.state),
            hash=value.hash,
            body=value.as_json(),
            reason=value.reason,
            supersedes=value.supersedes,
            at=at,
        )


async def test_a_stored_packet_reads_back_with_the_same_hash(uow: UnitOfWork, make_run: MakeRun) -> None:
    run_id = await make_run()
    original = packet(1)
    assert await add(uow, run_id, original)
    async with uow.transaction() as tx:
        row = await tx.packets.get(run_id, 1)
    assert row is not None
    assert (row.version, row.state, row.reason, row.supersedes, row.created_at) == (
        1,
        "proposed",
        "version 1",
        None,
        T0,
    )
    assert row.hash == original.hash
    assert Packet.from_json(row.document()).hash == original.hash
    assert Packet.from_json(row.document()) == original


async def test_a_version_is_never_overwritten(uow: UnitOfWork, make_run: MakeRun) -> None:
    run_id = await make_run()
    assert await add(uow, run_id, packet(1))
    other = packet(2)
    async with uow.transaction(run_id=run_id) as tx:
        assert not await tx.packets.add(
            run_id=run_id,
            version=1,
            state="proposed",
            hash=other.hash,
            body=other.as_json(),
            reason="again",
            supersedes=None,
            at=T0,
        )
        row = await tx.packets.get(run_id, 1)
    assert row is not None and (row.hash, row.reason) == (packet(1).hash, "version 1")


async def test_adopting_moves_states_by_compare_and_set(uow: UnitOfWork, make_run: MakeRun) -> None:
    run_id = await make_run()
    await add(uow, run_id, packet(1))
    await add(uow, run_id, packet(2, supersedes=1))
    later = T0 + timedelta(minutes=3)
    async with uow.transaction(run_id=run_id) as tx:
        assert await tx.packets.set_state_cas(
            run_id, 1, from_state="proposed", to_state="authoritative", at=T0
        )
        assert await tx.packets.set_state_cas(
            run_id, 2, from_state="proposed", to_state="authoritative", at=later
        )
        assert await tx.packets.set_state_cas(
            run_id, 1, from_state="authoritative", to_state="superseded", at=later
        )
    async with uow.transaction(run_id=run_id) as tx:
        # A second click on "Adopt v2" finds it no longer proposed.
        assert not await tx.packets.set_state_cas(
            run_id, 2, from_state="proposed", to_state="authoritative", at=later
        )
        current = await tx.packets.authoritative(run_id)
        first = await tx.packets.get(run_id, 1)
    assert current is not None and current.version == 2 and current.state_changed_at == later
    assert first is not None and first.state == "superseded"
    assert Packet.from_json(current.document()).state == PacketState.AUTHORITATIVE


async def test_versions_are_listed_in_order_and_by_state(uow: UnitOfWork, make_run: MakeRun) -> None:
    run_id = await make_run()
    other_run = await make_run("r-other")
    for version in (1, 2, 3):
        await add(uow, run_id, packet(version))
    await add(uow, other_run, packet(9))
    async with uow.transaction(run_id=run_id) as tx:
        await tx.packets.set_state_cas(run_id, 2, from_state="proposed", to_state="rejected", at=T0)
        assert [p.version for p in await tx.packets.for_run(run_id)] == [1, 2, 3]
        assert [p.version for p in await tx.packets.in_state(run_id, "proposed")] == [1, 3]
        latest = await tx.packets.latest(run_id)
        assert latest is not None and latest.version == 3
        assert await tx.packets.authoritative(run_id) is None
        assert await tx.packets.get(run_id, 9) is None


async def test_the_slack_message_of_a_posted_version_is_remembered(
    uow: UnitOfWork, make_run: MakeRun
) -> None:
    run_id = await make_run()
    await add(uow, run_id, packet(1))
    async with uow.transaction(run_id=run_id) as tx:
        assert await tx.packets.set_message(run_id, 1, channel="C0WARROOM", ts="1732500000.000100")
        assert not await tx.packets.set_message(run_id, 7, channel="C0WARROOM", ts="1")
        row = await tx.packets.get(run_id, 1)
    assert row is not None and (row.slack_channel, row.slack_ts) == ("C0WARROOM", "1732500000.000100")
