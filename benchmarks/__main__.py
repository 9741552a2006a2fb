"""Run every benchmark module in turn (or only those named: `python -m benchmarks forecast`);
each prints `name: value` lines.

Add a benchmark by writing `benchmarks/<name>.py` with `def run() -> None` and listing it here.
"""

from __future__ import annotations

import importlib
import sys

MODULES: list[str] = [
    "resequence",
    "fanout",
    "shared_pace",
    "readiness",
    "gate_ticks",
    "alert_to_message",
    "ack",
    "forecast",
    "ledger_verify",
]


def main() -> None:
    named = sys.argv[1:]
    unknown = [n for n in named if n not in MODULES]
    if unknown:
        raise SystemExit(f"no benchmark named {', '.join(unknown)}; there are: {', '.join(MODULES)}")
    for name in named or MODULES:
        module = importlib.import_module(f"benchmarks.{name}")
        module.run()


if __name__ == "__main__":
    main()
