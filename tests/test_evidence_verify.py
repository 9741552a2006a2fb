"""`cutover-bot evidence verify FILE.json`: the export's own ledger entries back every claim, offline.

The export comes from a real rehearsal (the payments example: sign-offs, an adopted proposal, a
two-person hold, traffic shifts). No database is reachable while verifying.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bot.cli import main
from bot.rehearsal import rehearse
from packets.chain import chain_hash, entry_body

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "payments-tokenization.yaml"
Doctor = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("evidence")
    report = workdir / "report.json"
    console = Console(file=io.StringIO(), width=160)
    status = asyncio.run(
        rehearse(
            EXAMPLE, report=report, console=console, database_url=f"sqlite+aiosqlite:///{workdir / 'r.db'}"
        )
    )
    assert status == 0
    evidence: dict[str, Any] = json.loads(report.read_text())["evidence"]
    return evidence


def verify(path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    # Nowhere to read a database from: the file alone must do.
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    return main(["evidence", "verify", str(path)])


def write(tmp_path: Path, evidence: dict[str, Any]) -> Path:
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(evidence, indent=2))
    return path


def test_the_export_carries_the_runs_ledger_entries(exported: dict[str, Any]) -> None:
    chain = exported["ledger"]["chain"]
    assert len(chain) == exported["ledger"]["entries"] > 10
    assert chain[-1]["hash"] == exported["ledger"]["head"]
    assert {"seq", "at", "run", "actor", "kind", "payload", "prev_hash", "hash"} <= set(chain[0])


def test_a_good_export_verifies_with_no_database(
    exported: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert verify(write(tmp_path, exported), monkeypatch) == 0
    out = capsys.readouterr().out
    assert f"{exported['ledger']['entries']} ledger entries verified" in out
    assert "every claim is backed by an entry" in out


def _release(evidence: dict[str, Any]) -> dict[str, Any]:
    release: dict[str, Any] = next(r for h in evidence["holds"] for r in h["releases"])
    return release


def credit_a_release_to_someone_else(evidence: dict[str, Any]) -> None:
    _release(evidence)["user"] = "U0MALLORY"


def move_a_release_in_time(evidence: dict[str, Any]) -> None:
    _release(evidence)["at"] = "2026-11-24T20:00:00-05:00"


def add_a_signoff(evidence: dict[str, Any]) -> None:
    evidence["signoffs"].append({**evidence["signoffs"][0], "user": "U0MALLORY"})


def claim_another_adopter(evidence: dict[str, Any]) -> None:
    next(p for p in evidence["packets"] if p["adopted"])["adopted"]["by"] = "U0MALLORY"


def rewrite_the_chain_and_its_head(evidence: dict[str, Any]) -> None:
    # A forger who also states the new head: the packet's own release claim is then unbacked.
    rewrite_the_chain_consistently(evidence)
    evidence["ledger"]["head"] = evidence["ledger"]["chain"][-1]["hash"]


def move_a_step_in_time(evidence: dict[str, Any]) -> None:
    evidence["steps"][1]["at"] = "2026-11-24T23:59:00-05:00"


def claim_a_different_ending(evidence: dict[str, Any]) -> None:
    evidence["final_state"] = "rolled_back"


def claim_more_traffic(evidence: dict[str, Any]) -> None:
    evidence["traffic"][0]["percent"] = 37


def edit_an_entry(evidence: dict[str, Any]) -> None:
    evidence["ledger"]["chain"][2]["actor"] = "U0MALLORY"


def drop_the_last_entry(evidence: dict[str, Any]) -> None:
    evidence["ledger"]["chain"].pop()


def rewrite_the_chain_consistently(evidence: dict[str, Any]) -> None:
    # Every hash recomputed after a forged release: only the head stated beside it gives it away.
    chain = evidence["ledger"]["chain"]
    target = next(e for e in chain if e["kind"] in ("hold_released", "hold_release_recorded"))
    target["payload"]["user"] = "U0MALLORY"
    prev = "0" * 64
    for entry in chain:
        body = entry_body(
            seq=entry["seq"],
            at=datetime.fromisoformat(entry["at"]),
            run_id=entry["run"],
            actor=entry["actor"],
            kind=entry["kind"],
            payload=entry["payload"],
        )
        entry["prev_hash"], entry["hash"] = prev, chain_hash(prev, body)
        prev = entry["hash"]


DOCTORED = [
    pytest.param(credit_a_release_to_someone_else, "release of hold", id="release-credited-elsewhere"),
    pytest.param(move_a_release_in_time, "release of hold", id="release-moved-in-time"),
    pytest.param(add_a_signoff, "sign-off by U0MALLORY", id="signoff-added"),
    pytest.param(claim_another_adopter, "adoption of packet version", id="adopter-changed"),
    pytest.param(move_a_step_in_time, "the step at seq", id="step-moved-in-time"),
    pytest.param(claim_a_different_ending, "final state rolled_back", id="ending-changed"),
    pytest.param(claim_more_traffic, "traffic change of", id="traffic-changed"),
    pytest.param(edit_an_entry, "ledger broken at seq 3", id="entry-edited"),
    pytest.param(drop_the_last_entry, "head is not the hash of its last entry", id="last-entry-dropped"),
    pytest.param(rewrite_the_chain_and_its_head, "release of hold", id="chain-and-head-rewritten"),
    pytest.param(rewrite_the_chain_consistently, "head is not the hash", id="chain-rewritten-consistently"),
]


@pytest.mark.parametrize(("doctor", "named"), DOCTORED)
def test_a_doctored_export_fails_naming_what_is_not_backed(
    exported: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    doctor: Doctor,
    named: str,
) -> None:
    doctored = copy.deepcopy(exported)
    doctor(doctored)
    assert verify(write(tmp_path, doctored), monkeypatch) == 1
    assert named in capsys.readouterr().err


def test_a_file_that_is_not_an_evidence_export_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"run": "r-1"}')
    assert verify(path, monkeypatch) == 1
    assert "carries no ledger entries" in capsys.readouterr().err
