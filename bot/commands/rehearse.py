"""`cutover-bot rehearse PLAN [--speed N] [--interactive] [--report FILE]`."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("rehearse", help="run a whole cutover on a simulated clock, without Slack")
    parser.add_argument("plan", type=Path)
    parser.add_argument(
        "--speed",
        type=float,
        default=0,
        help="simulated seconds per real second (0: as fast as possible, the default)",
    )
    parser.add_argument(
        "--interactive", action="store_true", help="ask at each hold who you are and whether to release"
    )
    parser.add_argument("--report", type=Path, help="write a JSON record of the rehearsal to this file")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from bot.rehearsal import rehearse

    return asyncio.run(
        rehearse(
            args.plan,
            speed=args.speed,
            interactive=args.interactive,
            report=args.report,
            database_url=os.environ.get("DATABASE_URL") or None,
        )
    )
