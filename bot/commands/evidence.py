"""`cutover-bot evidence RUN [--format md|json|cdr] [--database-url URL]`: print a run's evidence
packet (`cdr`: as a cutover decision record: context, scope, evidence, decision, constraints,
rollback criteria, consequences);
`cutover-bot evidence verify FILE.json`: check an exported packet with no database.

Sign-offs, packet versions and who adopted them, the gate results behind each advance, every hold
and who released it as which role, traffic, rollbacks, refusals, the final state, and the ledger
check with its head hash (handlers.evidence). Read only: safe beside a running bot. The JSON
export carries the run's ledger entries exactly as hashed.

`verify FILE.json` recomputes that chain from the file alone, checks it ends at the head the
export states, and checks that every claim (sign-offs, adoptions, holds and their releases,
traffic, rollbacks, refusals, the final state) is backed by an entry (packets.evidence_check).

Exit status: 0 printed (or verified), 1 no such run, the database could not be read, or the
export does not verify.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bot.clock import SystemClock
from bot.commands.db import add_database_url_argument
from packets.evidence_check import NotAnExport, check_export
from store.db import database_url, display_url

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_NOT_VERIFIED = 1
VERIFY = "verify"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evidence = subparsers.add_parser(
        "evidence",
        help="print a run's evidence packet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evidence.add_argument("run", metavar="RUN", help="the run id (as /cutover status shows it), or verify")
    evidence.add_argument("file", metavar="FILE", nargs="?", help="with verify: the exported JSON file")
    evidence.add_argument(
        "--format",
        choices=("md", "json", "cdr"),
        default="md",
        help="Markdown for people (default), JSON for tools, or a cutover decision record (Markdown)",
    )
    add_database_url_argument(evidence)
    evidence.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.run == VERIFY and args.file is not None:
        return verify(Path(args.file))
    url = database_url(args.database_url)
    try:
        evidence = asyncio.run(_build(url, args.run))
    except (SQLAlchemyError, OSError) as exc:
        print(f"could not read the evidence at {display_url(url)}: {type(exc).__name__}", file=sys.stderr)
        return EXIT_NOT_FOUND
    if evidence is None:
        print(f"there is no run '{args.run}'", file=sys.stderr)
        return EXIT_NOT_FOUND
    if args.format == "json":
        print(json.dumps(evidence, indent=2, sort_keys=True, ensure_ascii=False))
    elif args.format == "cdr":
        from handlers.decision_record import to_cdr

        sys.stdout.write(to_cdr(evidence))
    else:
        from handlers.evidence import to_markdown

        sys.stdout.write(to_markdown(evidence))
    return EXIT_OK


async def _build(url: str, run_id: str) -> dict[str, Any] | None:
    from bot.wiring import build_deps
    from handlers.evidence import build_evidence
    from store.db import make_engine
    from store.uow import UnitOfWork

    uow = UnitOfWork(make_engine(url))
    try:
        # No HTTP session: exporting evidence reads the store only, the outside world stays unwired.
        deps = build_deps(uow=uow, clock=SystemClock())
        return await build_evidence(run_id, deps)
    finally:
        await uow.dispose()


def verify(path: Path) -> int:
    """Check an exported evidence packet against the ledger entries it carries; no database."""
    try:
        evidence = json.loads(path.read_text(encoding="utf-8"))
        entries, problems = check_export(evidence)
    except OSError as exc:
        print(f"could not read {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_NOT_VERIFIED
    except ValueError as exc:  # not JSON, or NotAnExport
        why = str(exc) if isinstance(exc, NotAnExport) else "it is not JSON"
        print(f"{path}: {why}", file=sys.stderr)
        return EXIT_NOT_VERIFIED
    for problem in problems:
        print(f"run {evidence.get('run')}: {problem}", file=sys.stderr)
    if problems:
        return EXIT_NOT_VERIFIED
    print(f"run {evidence.get('run')}: {entries} ledger entries verified; every claim is backed by an entry")
    return EXIT_OK
