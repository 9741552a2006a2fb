"""`cutover-bot db upgrade | current`: bring the database schema to the version this code needs.

The URL comes from `--database-url`, else DATABASE_URL, else `sqlite+aiosqlite:///cutover.db` in
the working directory. `upgrade` is safe to repeat: a database already at head is left alone.

Exit status: 0 done, 1 the database could not be reached or migrated.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from sqlalchemy.exc import SQLAlchemyError

from store.db import current_revision, database_url, display_url, head_revision, make_engine, upgrade

EXIT_OK = 0
EXIT_FAILED = 1


def add_database_url_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        default=None,
        help="SQLAlchemy URL (default: $DATABASE_URL, else sqlite+aiosqlite:///cutover.db)",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = subparsers.add_parser("db", help="manage the database schema")
    actions = db.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    up = actions.add_parser(
        "upgrade",
        help="apply the schema migrations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_database_url_argument(up)
    up.set_defaults(func=run_upgrade)
    current = actions.add_parser("current", help="print the schema revision the database is at")
    add_database_url_argument(current)
    current.set_defaults(func=run_current)


def run_upgrade(args: argparse.Namespace) -> int:
    url = database_url(args.database_url)
    try:
        revision = asyncio.run(_upgrade(url))
    except (SQLAlchemyError, OSError) as exc:
        print(f"could not upgrade {display_url(url)}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{display_url(url)}: schema at revision {revision} (head)")
    return EXIT_OK


def run_current(args: argparse.Namespace) -> int:
    url = database_url(args.database_url)
    try:
        revision = asyncio.run(_current(url))
    except (SQLAlchemyError, OSError) as exc:
        print(f"could not read {display_url(url)}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    head = head_revision()
    if revision is None:
        print(f"{display_url(url)}: empty (no schema); head is {head}")
    else:
        note = "head" if revision == head else f"head is {head}: run `cutover-bot db upgrade`"
        print(f"{display_url(url)}: schema at revision {revision} ({note})")
    return EXIT_OK


async def _upgrade(url: str) -> str | None:
    await upgrade(url)
    return await _current(url)


async def _current(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return await current_revision(engine)
    finally:
        await engine.dispose()
