"""The store's outbox as the dispatcher sees it (`bot.dispatcher.OutboxPort`), one transaction per call.

- `claim`: `store.outbox.Outbox.claim` with a lease (see `DEFAULT_LEASE`);
- `keep`: which claimed rows are still this sender's, renewing their lease once half of it has
  passed, so a long lane (one recipient, many rows, Slack answering 429) outlives one lease
  without another replica claiming its rows and sending them a second time, out of order;
- `mark_sent`: records delivery, and for a `packet_posted` row also the message's channel and ts
  on the packet version (`tx.packets.set_message`), in the same transaction, so that a later
  `packet_superseded` row finds the message to update;
- `mark_retry` / `mark_failed`: as the store has them;
- `find_target`: the dispatcher's `FindTarget` for `packet_superseded` rows. The payload names the
  run and the superseded version; the message is looked up in the packets table at send time,
  because when the row was queued the old version's own `packet_posted` row may still have been
  waiting in the outbox. Rows to one channel are sent in id order, so by the time the notice is
  sent the old version's card is posted (or has failed for good).

A superseded version whose card was never posted (its `packet_posted` row failed, e.g.
`not_in_channel`) has no target: the dispatcher then marks the notice failed ("needs
payload.target") instead of posting it as a new message. There is no stale message with live
buttons to fix, and the new version's own card already says which version it supersedes, so a
separate "vN superseded" post would only be noise in a busy war room.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.dispatcher import OutboxRow
from bot.threads import placement
from packets.messages import MessageKind
from store.uow import UnitOfWork

# How long a claimed row stays reserved for its sender. Longer than the worst single round of
# attempts for one row (4 attempts with a 15 s timeout each, plus inline 429 waits); a sender that
# dies mid-round leaves its rows to another replica once the lease passes.
# Kept short (a dead replica's rows wait at most this long; a restarted one takes its own back at
# once, see `take_back`) and renewed before each row while half of it has passed.
DEFAULT_LEASE = timedelta(seconds=90)


class StoreOutbox:
    """`OutboxPort` over `store.outbox.Outbox`, plus `find_target` for chat.update rows."""

    def __init__(
        self, uow: UnitOfWork, *, lease: timedelta = DEFAULT_LEASE, sender: str | None = None
    ) -> None:
        self._uow = uow
        self._lease = lease
        # This replica's identity on its claims (None: anonymous, left to the lease alone).
        self._sender = sender
        # Rows this sender claimed and has not finished: id -> the lease end it holds them until.
        self._held: dict[int, datetime] = {}

    async def claim(self, *, now: datetime, limit: int) -> Sequence[OutboxRow]:
        async with self._uow.transaction() as tx:
            rows = await tx.outbox.claim(now=now, limit=limit, lease=self._lease, by=self._sender)
        for row in rows:
            if row.claimed_until is not None:
                self._held[row.id] = row.claimed_until
        return rows

    async def take_back(self, *, now: datetime) -> int:
        """At start: rows an earlier life of this sender claimed are due again at once."""
        if self._sender is None:
            return 0
        async with self._uow.transaction() as tx:
            return await tx.outbox.take_back(by=self._sender, now=now)

    async def keep(self, row_ids: Sequence[int], /, *, now: datetime) -> set[int]:
        """The rows of `row_ids` this sender still holds; leases half gone are renewed first."""
        held = {i for i in row_ids if i in self._held}
        stale: dict[datetime, list[int]] = {}
        for row_id in held:
            if self._held[row_id] - now <= self._lease / 2:
                stale.setdefault(self._held[row_id], []).append(row_id)
        if not stale:
            return held
        until = now + self._lease
        async with self._uow.transaction() as tx:
            renewed = set()
            for held_until, ids in stale.items():
                renewed |= await tx.outbox.renew(ids, held_until=held_until, until=until)
        for ids in stale.values():
            for row_id in ids:
                if row_id in renewed:
                    self._held[row_id] = until
                else:
                    # Another sender claimed it after the lease passed: it is theirs now.
                    del self._held[row_id]
                    held.discard(row_id)
        return held

    async def mark_sent(self, row_id: int, /, *, ts: str | None, channel: str | None, at: datetime) -> bool:
        self._held.pop(row_id, None)
        async with self._uow.transaction() as tx:
            row = await tx.outbox.get(row_id)
            finished = await tx.outbox.mark_sent(row_id, ts=ts, channel=channel, at=at)
            if finished and row is not None and row.kind == MessageKind.PACKET_POSTED and ts and channel:
                posted = _posted_version(row.run_id, row.payload)
                if posted is not None:
                    await tx.packets.set_message(posted[0], posted[1], channel=channel, ts=ts)
            return finished

    async def mark_retry(self, row_id: int, /, *, next_attempt_at: datetime, error: str) -> bool:
        self._held.pop(row_id, None)
        async with self._uow.transaction() as tx:
            return await tx.outbox.mark_retry(row_id, next_attempt_at=next_attempt_at, error=error)

    async def mark_failed(self, row_id: int, /, *, error: str) -> bool:
        self._held.pop(row_id, None)
        async with self._uow.transaction() as tx:
            return await tx.outbox.mark_failed(row_id, error=error)

    async def find_target(self, row: OutboxRow) -> Mapping[str, Any] | None:
        """{channel, ts} of the message the row replaces, or None: the message posted with the
        payload's `target_key` as its dedupe key, else the superseded version's card."""
        payload = row.payload
        key = payload.get("target_key")
        if isinstance(key, str) and key:
            return await self._posted(payload.get("run"), key)
        run, version = payload.get("run"), payload.get("version")
        if not isinstance(run, str) or not isinstance(version, int) or isinstance(version, bool):
            return None
        async with self._uow.transaction(read_only=True) as tx:
            packet = await tx.packets.get(run, version)
        if packet is None or not packet.slack_channel or not packet.slack_ts:
            return None
        return {"channel": packet.slack_channel, "ts": packet.slack_ts}

    async def find_thread(self, row: OutboxRow) -> Mapping[str, Any] | None:
        """{channel, ts, broadcast} of the run's message whose thread the row goes in
        (`bot.threads`), or None: top level, or the parent never posted."""
        run = row.payload.get("run")
        placed = placement(row.kind, row.recipient, row.payload, run=run if isinstance(run, str) else None)
        if placed.thread_key is None:
            return None
        parent = await self._posted(run, placed.thread_key)
        return None if parent is None else {**parent, "broadcast": placed.broadcast}

    async def _posted(self, run: Any, key: str) -> Mapping[str, Any] | None:
        """{channel, ts} of the run's message queued with dedupe key `key`, once Slack has it."""
        async with self._uow.transaction(read_only=True) as tx:
            posted = await tx.outbox.find(run_id=run, dedupe_key=key)
        if posted is None or not posted.slack_channel or not posted.slack_ts:
            return None
        return {"channel": posted.slack_channel, "ts": posted.slack_ts}


def _posted_version(run_id: str | None, payload: Any) -> tuple[str, int] | None:
    """(run, version) a packet_posted payload is the card of."""
    if not isinstance(payload, Mapping):
        return None
    packet = payload.get("packet")
    run = run_id or payload.get("run")
    version = packet.get("version") if isinstance(packet, Mapping) else None
    if not isinstance(run, str) or not isinstance(version, int) or isinstance(version, bool):
        return None
    return run, version
