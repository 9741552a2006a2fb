"""Requests arriving together are written to the inbox in one transaction (group commit).

The ack path's only wait is its inbox row's commit. One transaction per request made every
arrival queue for SQLite's single write lock, one by one, among the processing's own writes
(marking rows done, the use cases): under fifty requests at once the last waited for fifty
turns. Here the first arrival opens a transaction and every request that arrives while it is
open or waits for the lock is written by the next one: one turn of the lock, one INSERT and one
commit per batch (on PostgreSQL one WAL flush for the batch instead of one each).

A batch is all or nothing: a failed commit fails every request in it (Slack hears a 500 and
retries each), never half of them.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from store.inbox import Arriving
from store.uow import UnitOfWork


class GroupCommit:
    def __init__(self, uow: UnitOfWork, *, by: str, lease: timedelta) -> None:
        self._uow = uow
        self._by = by
        self._lease = lease
        self._waiting: list[tuple[Arriving, asyncio.Future[int | None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def accept(self, arrival: Arriving) -> int | None:
        """The arrival's inbox row id once committed, or None when its body was seen before."""
        answer: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((arrival, answer))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        # Shielded: a request given up on (its caller cancelled) must not cancel a batch it shares.
        return await asyncio.shield(answer)

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                async with self._uow.transaction(urgent=True) as tx:
                    ids = await tx.inbox.accept(
                        [arrival for arrival, _ in batch], by=self._by, lease=self._lease
                    )
            except asyncio.CancelledError:  # the loop is closing: nobody waits in vain
                for _, answer in [*batch, *self._waiting]:
                    answer.cancel()
                self._waiting = []
                raise
            except Exception as exc:
                for _, answer in batch:
                    answer.set_exception(exc)
            else:
                for (_, answer), row_id in zip(batch, ids, strict=True):
                    answer.set_result(row_id)
