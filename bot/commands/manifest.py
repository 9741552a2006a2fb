"""`cutover-bot manifest RUN [-o FILE]` and `cutover-bot manifest verify FILE --plan PLAN [--database URL]`.

`manifest RUN` emits the approval manifest of a run whose plan has a bundle and whose every
sign-off role approved the exact revision: JSON on standard output (or in FILE with -o), and a
`manifest_emitted` ledger entry with its hash. Refused (exit 2, the reason on stderr) until then.

`manifest verify FILE --plan PLAN` checks the manifest's own hash and that the plan file's
revision and bundle fields (artifacts, queue, window, environment) are the ones it names; with
`--database URL` also that its signers and ledger head are the run's and that its hash was
ledgered. Every difference is printed, one line each, naming the field.

Exit status: 0 emitted or verified, 1 differences found (or no such run), 2 refused or unreadable.
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
from packets.manifest import dump
from store.db import database_url, display_url

EXIT_OK = 0
EXIT_DIFFERS = 1
EXIT_REFUSED = 2
VERIFY = "verify"
# Who the ledger names as the actor of a manifest emitted from the command line.
CLI_ACTOR = "cutover-bot-cli"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    manifest = subparsers.add_parser(
        "manifest",
        help="emit or verify a run's approval manifest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="cutover-bot manifest RUN [-o FILE] | "
        "cutover-bot manifest verify FILE --plan PLAN [--database URL]",
    )
    manifest.add_argument("target", metavar="RUN", help=f"the run id, or '{VERIFY}'")
    manifest.add_argument("file", metavar="FILE", nargs="?", help="with verify: the manifest JSON file")
    manifest.add_argument("-o", "--output", metavar="FILE", help="write the manifest here, not to stdout")
    manifest.add_argument("--plan", metavar="PLAN", help="with verify: the plan file the manifest must match")
    manifest.add_argument(
        "--database",
        "--database-url",
        dest="database_url",
        metavar="URL",
        default=None,
        help="SQLAlchemy URL (emit: default $DATABASE_URL, else sqlite+aiosqlite:///cutover.db; "
        "verify: checked against the store only when given)",
    )
    manifest.add_argument("--user", default=CLI_ACTOR, help="who the ledger names as emitting it")
    manifest.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.target == VERIFY:
        if not args.file or not args.plan:
            print("usage: cutover-bot manifest verify FILE --plan PLAN [--database URL]", file=sys.stderr)
            return EXIT_REFUSED
        return verify(Path(args.file), plan_path=Path(args.plan), url=args.database_url)
    if args.file:
        print(
            f"unexpected argument '{args.file}'; usage: cutover-bot manifest RUN [-o FILE]", file=sys.stderr
        )
        return EXIT_REFUSED
    return emit(
        args.target, output=Path(args.output) if args.output else None, url=args.database_url, user=args.user
    )


def emit(run_id: str, *, output: Path | None, url: str | None, user: str) -> int:
    resolved = database_url(url)
    try:
        outcome = asyncio.run(_emit(resolved, run_id, user))
    except (SQLAlchemyError, OSError) as exc:
        print(f"could not read the run at {display_url(resolved)}: {type(exc).__name__}", file=sys.stderr)
        return EXIT_DIFFERS
    if not outcome.ok:
        print(outcome.message, file=sys.stderr)
        return EXIT_REFUSED
    text = dump(outcome.data["manifest"])
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        print(outcome.message, file=sys.stderr)
    return EXIT_OK


def verify(path: Path, *, plan_path: Path, url: str | None) -> int:
    from packets.manifest import differences
    from packets.plan import PlanInvalid
    from packets.plan_load import load_plan

    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        plan_text = plan_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        print(f"cannot read: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if not isinstance(manifest, dict):
        print(f"{path}: a manifest is a JSON object", file=sys.stderr)
        return EXIT_REFUSED
    try:
        plan = load_plan(plan_text, source=str(plan_path))
    except PlanInvalid as invalid:
        for line in invalid.lines():
            print(line, file=sys.stderr)
        return EXIT_REFUSED
    found = differences(manifest, plan)
    if url is not None:
        try:
            found += asyncio.run(_check(url, manifest))
        except (SQLAlchemyError, OSError) as exc:
            print(f"could not read the run at {display_url(url)}: {type(exc).__name__}", file=sys.stderr)
            return EXIT_DIFFERS
    for line in found:
        print(f"{path}: {line}", file=sys.stderr)
    if found:
        return EXIT_DIFFERS
    where = " and the ledger" if url is not None else ""
    print(f"{path}: manifest {manifest['hash'][:12]} verified against {plan_path}{where}")
    return EXIT_OK


def _no_outside_world(_plan: Any) -> Any:
    raise RuntimeError("the manifest reads the store only")


async def _emit(url: str, run_id: str, user: str) -> Any:
    from handlers.commands import EmitManifest
    from handlers.manifest import emit_manifest

    async with _deps(url) as deps:
        return await emit_manifest(EmitManifest(run=run_id, user=user), deps)


async def _check(url: str, manifest: dict[str, Any]) -> list[str]:
    from handlers.manifest import check_manifest

    async with _deps(url) as deps:
        return await check_manifest(manifest, deps)


class _deps:
    """Deps over the database at `url` for one command; the engine is disposed on the way out."""

    def __init__(self, url: str) -> None:
        self._url = url

    async def __aenter__(self) -> Any:
        from handlers.deps import Deps
        from store.db import make_engine
        from store.uow import UnitOfWork

        self._uow = UnitOfWork(make_engine(self._url))
        return Deps(
            uow=self._uow,
            clock=SystemClock(),
            telemetry_for=_no_outside_world,
            actuator_for=_no_outside_world,
        )

    async def __aexit__(self, *exc: object) -> None:
        await self._uow.dispose()
