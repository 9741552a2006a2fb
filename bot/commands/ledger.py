"""`cutover-bot ledger verify [--run ID]`: check every hash chain in the ledger.

Each run's entries must number 1..n with no gap, each must link to the hash of the one before
(the first to 64 zeros), each hash must be sha256(prev_hash + canonical_json(entry)), and the last
must match the chain's recorded head. Rows and heads are read in one snapshot (on PostgreSQL a
REPEATABLE READ READ ONLY transaction), so a bot appending meanwhile never looks like a cut chain.
One line per run; a broken chain names the first sequence number that does not verify.

Exit status: 0 every chain checked holds, 1 a chain is broken, missing or unreadable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from sqlalchemy.exc import SQLAlchemyError

from bot.commands.db import add_database_url_argument
from store.db import database_url, display_url, make_engine
from store.ledger import ChainVerdict
from store.uow import UnitOfWork

EXIT_OK = 0
EXIT_BROKEN = 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ledger = subparsers.add_parser("ledger", help="work with the hash-chained ledger")
    actions = ledger.add_subparsers(dest="ledger_action", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify",
        help="verify the hash chains",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("--run", dest="run_id", metavar="ID", default=None, help="verify only this run")
    add_database_url_argument(verify)
    verify.set_defaults(func=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    url = database_url(args.database_url)
    try:
        verdicts = asyncio.run(_verify(url, args.run_id))
    except (SQLAlchemyError, OSError) as exc:
        print(f"could not read the ledger at {display_url(url)}: {exc}", file=sys.stderr)
        return EXIT_BROKEN
    if args.run_id is not None and verdicts[0].entries == 0 and verdicts[0].ok:
        print(f"run {args.run_id}: no ledger entries", file=sys.stderr)
        return EXIT_BROKEN
    if not verdicts:
        print("no ledger entries yet")
        return EXIT_OK
    for verdict in verdicts:
        print(verdict.describe(), file=sys.stdout if verdict.ok else sys.stderr)
    return EXIT_OK if all(v.ok for v in verdicts) else EXIT_BROKEN


async def _verify(url: str, run_id: str | None) -> list[ChainVerdict]:
    engine = make_engine(url)
    try:
        return await verify_ledger(UnitOfWork(engine), run_id)
    finally:
        await engine.dispose()


async def verify_ledger(uow: UnitOfWork, run_id: str | None = None) -> list[ChainVerdict]:
    """Every chain (or one run's) checked against its head, all read in one snapshot."""
    async with uow.transaction(read_only=True, snapshot=True) as tx:
        if run_id is not None:
            return [await tx.ledger.verify(run_id)]
        return await tx.ledger.verify_all()
