"""`cutover-bot`: one entry point; each subcommand lives in its own module under bot/commands/.

Each module exposes `register(subparsers)` which adds its parser and sets `func`, a callable
taking the parsed namespace and returning the exit status. Modules are imported lazily so that
`plan check` does not pay for Slack or SQLAlchemy imports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> module under bot.commands
COMMANDS: dict[str, str] = {
    "serve": "serve",
    "rehearse": "rehearse",
    "plan": "plan",
    "gates": "gates",
    "evidence": "evidence",
    "manifest": "manifest",
    "ledger": "ledger",
    "db": "db",
    "engine": "engine",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cutover-bot", description="War-room bot for production cutovers.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=f"see `cutover-bot {name} --help`")
            continue
        try:
            module = importlib.import_module(f"bot.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bot.commands.{module_name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(first if first in COMMANDS else None)
    args = parser.parse_args(args_list)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    status: int = func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
