"""The one route by which a message for people leaves a use case: `post`, into the outbox.

Every channel post, DM and in-place update the bot makes is one `post` inside the use case's
transaction, so it commits (or vanishes) with the state change it reports; the dispatcher sends
it afterwards. The payload is typed (`packets.messages`) and its kind names the template; its text
is redacted when it is rendered for Slack (`bot.render`), on the way out.

The only messages that do not travel this way are synchronous answers to the person who acted
(the ephemeral reply to a command or click, the rollback confirmation, the App Home view); they
are all built in one place, `bot.replies`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from packets.messages import Message
from store.uow import Transaction

# The dedupe key of a run's plan summary, its first message in the war room: the thread the
# run's ledger witness goes in.
PLAN_KEY = "plan"


class InRun(Protocol):
    """Where a message is written: one run's transaction, at one time (a `RunContext` is one)."""

    @property
    def tx(self) -> Transaction: ...

    @property
    def run(self) -> str: ...

    @property
    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Opening:
    """An `InRun` for the transaction that creates the run, before there is a `RunContext`."""

    tx: Transaction
    run: str
    now: datetime


async def post(where: InRun, *, to: str, message: Message, dedupe_key: str | None = None) -> None:
    """Queue `message` for `to` (a channel or a user id) in the transaction of `where`."""
    body = {**message.as_json(), "run": where.run}
    await where.tx.outbox.enqueue(
        run_id=where.run, kind=message.kind, recipient=to, payload=body, dedupe_key=dedupe_key, at=where.now
    )


async def answer(where: InRun, *, key: str, state: str, by: str, detail: str | None = None) -> bool:
    """Retire the buttons of the message queued with dedupe key `key`: queue a copy of it that says
    who did what when (`outcome`) and replaces it in place (`target_key`, a chat.update once the
    original's ts is known). False when no such message was queued (nothing to retire)."""
    original = await where.tx.outbox.find(run_id=where.run, dedupe_key=key)
    if original is None or not isinstance(original.payload, dict):
        return False
    outcome = {"state": state, "by": by, "at": where.now.isoformat(), "detail": detail}
    body = {**original.payload, "outcome": outcome, "target_key": key}
    await where.tx.outbox.enqueue(
        run_id=where.run,
        kind=original.kind,
        recipient=original.recipient,
        payload=body,
        dedupe_key=f"{key}:{state}",
        at=where.now,
    )
    return True
