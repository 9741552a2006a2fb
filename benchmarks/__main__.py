"""Run every benchmark module in turn; each prints `name: value` lines.

Add a benchmark by writing `benchmarks/<name>.py` with `def run() -> None` and listing it here.
"""

from __future__ import annotations

import importlib

MODULES: list[str] = [
    "resequence",
    "fanout",
    "readiness",
    "gate_ticks",
    "ack",
    "forecast",
    "ledger_verify",
]


def main() -> None:
    for name in MODULES:
        module = importlib.import_module(f"benchmarks.{name}")
        module.run()


if __name__ == "__main__":
    main()
