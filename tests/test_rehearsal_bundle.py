"""The bundle example rehearses a handoff to its deployment queue and ends with a verified manifest."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bot.rehearsal import rehearse
from packets.manifest import manifest_hash
from packets.plan_load import load_plan

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def rehearsed(name: str, tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    out = io.StringIO()
    report = tmp_path / f"{name}.json"
    status = await rehearse(
        EXAMPLES / f"{name}.yaml",
        report=report,
        console=Console(file=out, width=160, highlight=False, soft_wrap=True),
        database_url=f"sqlite+aiosqlite:///{tmp_path / (name + '.db')}",
    )
    return status, json.loads(report.read_text()), out.getvalue()


async def test_the_bundle_rehearsal_hands_over_inside_the_window_and_verifies_its_manifest(
    tmp_path: Path,
) -> None:
    status, report, printed = await rehearsed("rc-bundle-handoff", tmp_path)

    assert status == 0, printed
    assert report["final_state"] == "completed" and report["ledger_verified"] is True
    manifest = report["manifest"]
    assert manifest["verified"] is True and manifest["problems"] == []
    assert manifest["manifest"]["hash"] == manifest_hash(manifest["manifest"])
    assert manifest["manifest"]["queue"] == "prod-deploy-east"
    early = [r for r in report["refusals"] if r["action"] == "start"]
    assert len(early) == 1 and "window has not opened yet" in early[0]["reason"]
    window = manifest["manifest"]["window"]
    shifts = [datetime.fromisoformat(s["at"]) for s in report["shifts"]]
    assert shifts and datetime.fromisoformat(window["start"]) <= min(shifts)
    assert "Manifest check:" in printed and "verified against the plan file and the ledger" in printed


async def test_the_bundle_rehearsal_supersedes_rc3_with_rc4_and_hands_over_the_rc4_revision(
    tmp_path: Path,
) -> None:
    status, report, printed = await rehearsed("rc-bundle-handoff", tmp_path)

    assert status == 0, printed
    assert "is superseded by run" in printed
    assert "Run rc-bundle-handoff-20261124-210000: superseded" in printed
    rc4 = (EXAMPLES / "rc-bundle-handoff-rc4.yaml").read_text(encoding="utf-8")
    assert report["manifest"]["manifest"]["revision"] == load_plan(rc4).revision
    assert report["run"] != "rc-bundle-handoff-20261124-210000"
    released = [line for line in printed.splitlines() if "release run/bundle/1" in line]
    assert released and "Released run/bundle/1 as payments-risk" in released[0]
