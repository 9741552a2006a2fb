"""`cutover-bot engine doc [-o PATH]`: write the engine's transition table as markdown.

The text comes from `packets.engine.doc.render`; the default path is docs/engine.md, which the
tests compare with the rendered text. `-o -` prints it instead.

Exit status: 0 written, 1 the file could not be written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from packets.engine.doc import render

EXIT_OK = 0
EXIT_FAILED = 1
DEFAULT_PATH = "docs/engine.md"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    engine = subparsers.add_parser("engine", help="work with the stage engine")
    actions = engine.add_subparsers(dest="engine_action", required=True, metavar="ACTION")
    doc = actions.add_parser(
        "doc",
        help="write the state × event table to docs/engine.md",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    doc.add_argument(
        "-o", "--output", default=DEFAULT_PATH, metavar="PATH", help="where to write ('-': stdout)"
    )
    doc.set_defaults(func=run_doc)


def run_doc(args: argparse.Namespace) -> int:
    text = render()
    if args.output == "-":
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"could not write {args.output}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {args.output}")
    return EXIT_OK
