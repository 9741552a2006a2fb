"""The ledger's witness outside the database: the run's chain head, posted in the war room.

After a use case on a run commits entries, the chain's head (`seq` and full hash) is queued for
the war room, in the run's thread (`bot.threads`), as message metadata (`packets.witness`):
at most once per `packets.witness.MIN_GAP` per run, and always once the run has ended, so the
final head is never lost. It is queued in the use case's transaction like any message (the
outbox sends it after the commit); the last one queued says what was witnessed, and when.
"""

from __future__ import annotations

from handlers.context import RunContext
from handlers.outbox import post
from packets import messages as msg
from packets.engine.progress import TERMINAL
from packets.witness import due
from store.ledger import ChainHead


async def witness_if_due(ctx: RunContext, head: ChainHead) -> None:
    """Queue `head` (the chain's head, which this use case moved) for the war room, if due."""
    last = await ctx.tx.outbox.latest(run_id=ctx.run, kind=msg.MessageKind.LEDGER_HEAD)
    if last is not None and head.seq <= int(last.payload["seq"]):
        return
    ended = ctx.progress.state in TERMINAL
    if not ended and not due(last.created_at if last is not None else None, ctx.now):
        return
    line = msg.LedgerHead(seq=head.seq, hash=head.hash)
    await post(ctx, to=ctx.plan.channel, message=line)
