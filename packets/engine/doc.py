"""The transition table as markdown: the text of docs/engine.md.

Pure: it returns the text and never writes it. `cutover-bot engine doc` writes the file, and
tests/test_engine_doc.py fails when the file in the repository is not what this renders, so the
document cannot drift from the table it describes.
"""

from __future__ import annotations

from typing import Any

from packets.engine.events import EVENT_TYPES
from packets.engine.progress import TERMINAL, RunState
from packets.engine.table import TABLE, Row, row_for

REGENERATE = "make engine-doc (or: cutover-bot engine doc)"

# Cells name the states the run may end in, in the order they are declared.
_ORDER = {state: n for n, state in enumerate(RunState)}


def _states(states: frozenset[RunState]) -> str:
    return ", ".join(f"`{s}`" for s in sorted(states, key=_ORDER.__getitem__))


def _after(row: Row[Any], state: RunState) -> str:
    after = set(row.to)
    if row.stays:
        after.add(state)
    return _states(frozenset(after))


def render() -> str:
    """docs/engine.md: the state × event matrix, then every row of the table with what it does."""
    lines = [
        "# The stage engine's transition table",
        "",
        f"<!-- Generated from packets/engine/table.py by {REGENERATE}; do not edit by hand. -->",
        "",
        "`packets.engine.table.step(progress, event, *, plan, packet, roster)` applies one event to a run.",
        "A cell names the states the run may be in afterwards; `·` means the event is an",
        "`IllegalTransition` in that state. Terminal states: " + _states(TERMINAL) + ".",
        "",
        "## State × event",
        "",
        "| state \\ event | " + " | ".join(f"`{e.kind}`" for e in EVENT_TYPES) + " |",
        "| --- | " + " | ".join("---" for _ in EVENT_TYPES) + " |",
    ]
    for state in RunState:
        cells = []
        for event in EVENT_TYPES:
            row = row_for(state, event)
            cells.append("·" if row is None else _after(row, state))
        lines.append(f"| `{state}` | " + " | ".join(cells) + " |")
    lines += ["", "## Rows", "", "| event | in | may end in | does |", "| --- | --- | --- | --- |"]
    for row in TABLE:
        to = "(stays)" if not row.to else _states(row.to) + (" (or stays)" if row.stays else "")
        does = row.does.replace("|", "\\|")
        lines.append(f"| `{row.event.kind}` | {_states(row.states)} | {to} | {does} |")
    return "\n".join(lines) + "\n"
