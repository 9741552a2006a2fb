"""docs/engine.md is the transition table as `packets.engine.doc.render` renders it, never stale."""

from __future__ import annotations

from pathlib import Path

from bot.cli import main
from packets.engine.doc import REGENERATE, render
from packets.engine.events import EVENT_TYPES
from packets.engine.progress import RunState
from packets.engine.table import TABLE

DOC = Path(__file__).resolve().parent.parent / "docs" / "engine.md"


def test_docs_engine_md_is_the_table_as_rendered_now() -> None:
    on_disk = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    stale = f"docs/engine.md is not current with packets/engine/table.py: run {REGENERATE}"
    assert on_disk == render(), stale


def test_the_rendering_has_a_line_per_state_and_a_line_per_row() -> None:
    text = render()
    assert all(f"| `{state}` |" in text for state in RunState)
    assert all(f"`{event.kind}`" in text for event in EVENT_TYPES)
    assert sum(1 for line in text.splitlines() if line.startswith("| `") and "` | `" in line) >= len(TABLE)


def test_the_engine_doc_command_writes_what_render_returns(tmp_path: Path) -> None:
    out = tmp_path / "engine.md"
    assert main(["engine", "doc", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render()
