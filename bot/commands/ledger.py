"""`cutover-bot ledger verify [--run ID] [--witness FILE]` and `cutover-bot ledger witness RUN`.

`verify` checks every hash chain in the ledger. Each run's entries must number 1..n with no gap,
each must link to the hash of the one before (the first to 64 zeros), each hash must be
sha256(prev_hash + canonical_json(entry)), and the last must match the chain's recorded head.
Rows and heads are read in one snapshot (on PostgreSQL a REPEATABLE READ READ ONLY transaction),
so a bot appending meanwhile never looks like a cut chain. One line per run; a broken chain names
the first sequence number that does not verify.

With `--witness FILE` (JSON lines `{"run": ID, "seq": N, "hash": HEX}`), every witnessed head must
also be in the ledger at its seq with its hash. A chain rewritten with its hashes and head
recomputed, cut back with its head moved back, deleted, or truncated verifies on its own; against
heads Slack kept, it does not: each missing head is named by run and seq.

`witness RUN` prints the heads the bot posted for the run in its war room (message metadata of
type `cutover_ledger_head`, read with `conversations.history` and `include_all_metadata`), as
witness lines, oldest first. It needs SLACK_BOT_TOKEN (and SLACK_API_URL for a Slack other than
slack.com); the channel is the run's, from the database, unless `--channel` names it.

Exit status: 0 every chain (and witnessed head) checked holds, 1 otherwise or when unreadable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import SQLAlchemyError

from bot.commands.db import add_database_url_argument
from bot.dispatcher import make_client
from bot.settings import Settings
from packets.witness import (
    WitnessedHead,
    WitnessInvalid,
    describe_problem,
    from_message,
    parse_lines,
    to_line,
    witness_problem,
)
from store.db import database_url, display_url, make_engine
from store.ledger import ChainVerdict
from store.uow import UnitOfWork

EXIT_OK = 0
EXIT_BROKEN = 1
HISTORY_PAGE = 200  # conversations.history's recommended page size


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
    verify.add_argument(
        "--witness", metavar="FILE", default=None, help="witnessed heads (JSON lines) the ledger must contain"
    )
    add_database_url_argument(verify)
    verify.set_defaults(func=run_verify)
    witness = actions.add_parser(
        "witness",
        help="print the heads witnessed in the run's war room",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    witness.add_argument("run_id", metavar="RUN")
    witness.add_argument(
        "--channel", default=None, help="the war room (default: the run's, from the database)"
    )
    witness.add_argument("--page-size", type=int, default=HISTORY_PAGE, help=argparse.SUPPRESS)
    add_database_url_argument(witness)
    witness.set_defaults(func=run_witness)


def run_verify(args: argparse.Namespace) -> int:
    url = database_url(args.database_url)
    heads: list[WitnessedHead] | None = None
    if args.witness is not None:
        try:
            heads = parse_lines(Path(args.witness).read_text(encoding="utf-8"))
        except OSError as exc:
            print(f"could not read the witness file {args.witness}: {exc.strerror}", file=sys.stderr)
            return EXIT_BROKEN
        except WitnessInvalid as invalid:
            print(f"the witness file {args.witness}: {invalid}", file=sys.stderr)
            return EXIT_BROKEN
        if args.run_id is not None:
            heads = [h for h in heads if h.run == args.run_id]
    try:
        verdicts, problems = asyncio.run(_verify(url, args.run_id, heads or ()))
    except (SQLAlchemyError, OSError) as exc:
        print(f"could not read the ledger at {display_url(url)}: {exc}", file=sys.stderr)
        return EXIT_BROKEN
    if args.run_id is not None and verdicts[0].entries == 0 and verdicts[0].ok and not problems:
        print(f"run {args.run_id}: no ledger entries", file=sys.stderr)
        return EXIT_BROKEN
    if not verdicts and heads is None:
        print("no ledger entries yet")
        return EXIT_OK
    for verdict in verdicts:
        print(verdict.describe(), file=sys.stdout if verdict.ok else sys.stderr)
    for problem in problems:
        print(problem, file=sys.stderr)
    if heads is not None and not problems:
        print(f"{len(heads)} witnessed heads found in the ledger")
    return EXIT_OK if all(v.ok for v in verdicts) and not problems else EXIT_BROKEN


async def _verify(
    url: str, run_id: str | None, heads: Sequence[WitnessedHead]
) -> tuple[list[ChainVerdict], list[str]]:
    engine = make_engine(url)
    try:
        return await verify_with_witness(UnitOfWork(engine), run_id, heads)
    finally:
        await engine.dispose()


async def verify_ledger(uow: UnitOfWork, run_id: str | None = None) -> list[ChainVerdict]:
    """Every chain (or one run's) checked against its head, all read in one snapshot."""
    verdicts, _ = await verify_with_witness(uow, run_id, ())
    return verdicts


async def verify_with_witness(
    uow: UnitOfWork, run_id: str | None, heads: Sequence[WitnessedHead]
) -> tuple[list[ChainVerdict], list[str]]:
    """The chains' verdicts and, in the same snapshot, each witnessed head the ledger lacks."""
    async with uow.transaction(read_only=True, snapshot=True) as tx:
        verdicts = [await tx.ledger.verify(run_id)] if run_id is not None else await tx.ledger.verify_all()
        problems = []
        hashes: dict[str, dict[int, str]] = {}
        for head in heads:
            if head.run not in hashes:
                hashes[head.run] = await tx.ledger.hashes(head.run)
            problem = witness_problem(head, hashes[head.run])
            if problem is not None:
                problems.append(describe_problem(head, problem))
    return verdicts, problems


def run_witness(args: argparse.Namespace) -> int:
    settings = Settings()
    token = settings.slack_bot_token.get_secret_value().strip()
    if not token:
        print("ledger witness reads Slack: set SLACK_BOT_TOKEN", file=sys.stderr)
        return EXIT_BROKEN
    url = database_url(args.database_url)
    try:
        heads = asyncio.run(_witness(args, url=url, token=token, api_url=settings.api_url))
    except (SQLAlchemyError, OSError) as exc:
        print(f"could not read the run at {display_url(url)}: {exc}", file=sys.stderr)
        return EXIT_BROKEN
    except SlackApiError as exc:
        print(f"could not read the war room's history: {exc.response.get('error')}", file=sys.stderr)
        return EXIT_BROKEN
    except LookupError as missing:
        print(str(missing.args[0]), file=sys.stderr)
        return EXIT_BROKEN
    if not heads:
        print(f"run {args.run_id}: no witnessed heads in the war room", file=sys.stderr)
        return EXIT_BROKEN
    for head in heads:
        print(to_line(head))
    return EXIT_OK


async def _witness(args: argparse.Namespace, *, url: str, token: str, api_url: str) -> list[WitnessedHead]:
    channel = args.channel
    if channel is None:
        engine = make_engine(url)
        try:
            async with UnitOfWork(engine).transaction(read_only=True) as tx:
                run = await tx.runs.get(args.run_id)
        finally:
            await engine.dispose()
        if run is None:
            raise LookupError(f"run {args.run_id} is not in the database; name its war room with --channel")
        channel = run.channel
    client = make_client(token=token, base_url=api_url)
    found: set[WitnessedHead] = set()
    cursor: str | None = None
    while True:
        page = await client.conversations_history(
            channel=channel, include_all_metadata=True, limit=args.page_size, cursor=cursor
        )
        for message in page.get("messages") or []:
            head = from_message(message)
            if head is not None and head.run == args.run_id:
                found.add(head)
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if not page.get("has_more") or cursor is None:
            return sorted(found)
