"""The one route by which a message for people leaves a use case: `post`, into the outbox.

Every channel post, DM and in-place update the bot makes is one `post` inside the use case's
transaction, so it commits (or vanishes) with the state change it reports; the dispatcher sends
it afterwards. The payload is typed (`packets.messages`), its kind names the template, and it is
redacted here, once, on the way out.

The only messages that do not travel this way are synchronous answers to the person who acted
(the ephemeral reply to a command or click, the rollback confirmation, the App Home view); they
are all built in one place, `bot.replies`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from packets.messages import Message
from packets.redact import redact_data
from store.uow import Transaction


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
    plain = {**message.as_json(), "run": where.run}
    body = _keep_machine_data(plain, redact_data(plain))
    await where.tx.outbox.enqueue(
        run_id=where.run, kind=message.kind, recipient=to, payload=body, dedupe_key=dedupe_key, at=where.now
    )


# Hashes and revisions are hex: a run of 13+ digits in one can pass the Luhn check and would be
# masked as a card, breaking the Sign-off button (it carries the revision) or the packet's hash.
_MACHINE_KEYS = frozenset({"revision", "plan_revision", "hash", "ledger_head"})


def _keep_machine_data(plain: Any, redacted: Any) -> Any:
    """`redacted`, with the original value put back under every machine-data key."""
    if isinstance(plain, dict) and isinstance(redacted, dict):
        return {
            key: plain[key] if key in _MACHINE_KEYS else _keep_machine_data(plain.get(key), value)
            for key, value in redacted.items()
        }
    if isinstance(plain, list) and isinstance(redacted, list) and len(plain) == len(redacted):
        return [_keep_machine_data(p, r) for p, r in zip(plain, redacted, strict=True)]
    return redacted
