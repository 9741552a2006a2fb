"""The inbox's writing down: requests written together get a row each, a body seen before none."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bot.group_commit import GroupCommit
from store.inbox import Arriving, InboxState
from store.uow import UnitOfWork

AT = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)
LEASE = timedelta(seconds=15)


def _request(key: str) -> Arriving:
    return Arriving(dedupe_key=key, body=f"command=%2Fcutover&text={key}", headers={}, at=AT)


async def test_requests_written_in_one_statement_get_a_row_each_and_a_body_seen_before_gets_none(
    uow: UnitOfWork,
) -> None:
    async with uow.transaction() as tx:
        first = await tx.inbox.accept([_request("a"), _request("b"), _request("a")], by="r1", lease=LEASE)
    async with uow.transaction() as tx:
        later = await tx.inbox.accept([_request("b"), _request("c")], by="r1", lease=LEASE)
        rows = await tx.inbox.all()

    a, b, repeated = first
    assert a is not None and b is not None and a != b and repeated is None
    assert later[0] is None and later[1] is not None
    assert [(r.id, r.dedupe_key) for r in rows] == [(a, "a"), (b, "b"), (later[1], "c")]
    assert {(r.state, r.claimed_by, r.claimed_until) for r in rows} == {
        (InboxState.PROCESSING.value, "r1", AT + LEASE)
    }


async def test_requests_arriving_together_are_each_told_their_own_row(uow: UnitOfWork) -> None:
    arrivals = GroupCommit(uow, by="r1", lease=LEASE)

    ids = await asyncio.gather(*(arrivals.accept(_request(key)) for key in "abcab"))

    async with uow.transaction(read_only=True) as tx:
        rows = {row.id: row.dedupe_key for row in await tx.inbox.all()}
    assert [rows[i] for i in ids[:3] if i is not None] == ["a", "b", "c"]
    assert ids[3:] == [None, None]
