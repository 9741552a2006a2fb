"""The rehearsal: every example plan plays to the end its script expects, through the real use cases."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from bot.cli import main
from bot.rehearsal import rehearse

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
REPORT_KEYS = {
    "plan",
    "revision",
    "final_state",
    "packets",
    "notices",
    "holds",
    "shifts",
    "refusals",
    "ledger_verified",
}


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=160, highlight=False, soft_wrap=True), out


async def _rehearse(name: str, tmp_path: Path, **options: object) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    console, out = _console()
    report = tmp_path / f"{name}.json"
    status = await rehearse(
        EXAMPLES / f"{name}.yaml",
        report=report,
        console=console,
        database_url=f"sqlite+aiosqlite:///{tmp_path / (name + '.db')}",
        **options,
    )  # type: ignore[arg-type]
    return status, json.loads(report.read_text()), out.getvalue()


async def test_the_payments_rehearsal_completes_with_a_refused_release_and_a_two_person_hold(
    tmp_path: Path,
) -> None:
    status, report, printed = await _rehearse("payments-tokenization", tmp_path)

    assert status == 0
    assert set(report) >= REPORT_KEYS
    assert report["final_state"] == "completed" and report["ledger_verified"] is True
    assert any(r["user"] == "U0RISK1" and "release" in r["action"] for r in report["refusals"])
    retire = next(h for h in report["holds"] if h["checkpoint"] == "retire-legacy")
    assert {(r["user"], r["role"]) for r in retire["releases"]} == {
        ("U0RISK1", "payments-risk"),
        ("U0REL2", "release-authority"),
    }
    gate_hold = next(h for h in report["holds"] if h["checkpoint"] == "canary-a" and "latency" in h["reason"])
    assert [r["user"] for r in gate_hold["releases"]] == ["U0REL2"]  # the release authority's delegate
    assert [p["state"] for p in report["packets"]][-1] == "authoritative"
    assert any(p["state"] == "superseded" for p in report["packets"])
    dms = [n for n in report["notices"] if n["kind"] == "delta_dm"]
    assert dms and all(n["recipient"].startswith("U") for n in dms)
    assert report["shifts"][-1]["percent"] == 100
    assert "Ledger check" in printed and "Traceback" not in printed
    # The heads it would have posted in the war room: they end at the ledger's head, and the
    # rehearsal's own ledger holds every one of them.
    witness = report["witness"]
    assert witness[-1] == {
        "run": report["run"],
        "seq": report["evidence"]["ledger"]["entries"],
        "hash": report["evidence"]["ledger"]["head"],
    }
    assert len(witness) < report["evidence"]["ledger"]["entries"]  # at most one per 10 s
    witness_file = tmp_path / "witness.jsonl"
    witness_file.write_text("".join(json.dumps(h) + "\n" for h in witness))
    database = f"sqlite+aiosqlite:///{tmp_path / 'payments-tokenization.db'}"
    verified = await asyncio.to_thread(
        main, ["ledger", "verify", "--witness", str(witness_file), "--database-url", database]
    )
    assert verified == 0


async def test_the_report_gives_each_checkpoint_its_actual_times_and_each_packet_its_proposal_and_adoption(
    tmp_path: Path,
) -> None:
    _, report, printed = await _rehearse("payments-tokenization", tmp_path)

    actuals = {a["checkpoint"]: a for a in report["actuals"]}
    assert set(actuals) == {c["checkpoint"] for c in report["packets"][0]["timeline"]}
    key = actuals["key-replication"]
    # ISO 8601 in the plan window's offset; the script released it at 21:02 and reported it late.
    assert key["started_at"] == "2026-11-24T21:02:00-05:00"
    assert key["ended_at"] is not None and key["ended_at"].endswith("-05:00")
    assert all(a["started_at"] <= a["ended_at"] for a in actuals.values() if a["ended_at"])
    for packet in report["packets"]:
        assert packet["proposed_at"].endswith("-05:00")
        if packet["state"] in ("authoritative", "superseded") and packet["version"] == 1:
            assert packet["adopted_at"] == packet["proposed_at"]
    assert "adopted_at" in report["packets"][-1]
    assert not any("adopted_at" in p for p in report["packets"] if p["state"] in ("proposed", "rejected"))
    rows = {t["checkpoint"]: t for t in report["evidence"]["timeline"]}
    assert rows["key-replication"]["actual_start"] == key["started_at"]
    assert rows["key-replication"]["planned_start"] is not None
    assert "Planned and actual" in printed


async def test_the_payments_rehearsal_ends_with_a_packet_that_follows_what_happened_after_its_adoption(
    tmp_path: Path,
) -> None:
    _, report, _ = await _rehearse("payments-tokenization", tmp_path)

    drift = [p for p in report["packets"] if p["reason"].startswith("forecast drift")]
    assert drift and "held" in drift[0]["reason"] and "canary-a" in drift[0]["reason"]
    last = [p for p in report["packets"] if p["state"] == "authoritative"][-1]
    assert last in drift  # the script adopts the drift proposal
    adopted = datetime.fromisoformat(last["adopted_at"])
    actual = {a["checkpoint"]: a for a in report["actuals"]}
    checked = 0
    for line in last["timeline"]:
        happened = actual[line["checkpoint"]]
        if happened["started_at"] is None or datetime.fromisoformat(happened["started_at"]) < adopted:
            continue
        checked += 1
        for planned, real in ((line["start"], happened["started_at"]), (line["end"], happened["ended_at"])):
            gap = abs(datetime.fromisoformat(planned) - datetime.fromisoformat(real))
            assert gap < timedelta(minutes=5), (line["checkpoint"], planned, real)
    assert checked >= 4


async def test_the_command_window_rehearsal_holds_the_protected_replication_and_refuses_a_stale_ack(
    tmp_path: Path,
) -> None:
    status, report, _ = await _rehearse("command-window-resequencing", tmp_path)

    assert status == 0 and report["final_state"] == "completed"
    assert any("v1" in r["reason"] and "acknowledge" in r["action"] for r in report["refusals"])
    assert any(h["id"].startswith("db-replication/conflict") for h in report["holds"])
    narrowed = next(p for p in report["packets"] if "window" in p["reason"])
    replication = next(c for c in narrowed["timeline"] if c["checkpoint"] == "db-replication")
    assert replication["protected"] is True
    adopted = [p for p in report["packets"] if p["state"] == "authoritative"]
    assert adopted and adopted[0]["version"] > 1


async def test_the_ga_breach_rehearsal_rolls_back_globally_and_says_that_was_expected(tmp_path: Path) -> None:
    status, report, _ = await _rehearse("ga-canary-breach", tmp_path)

    assert status == 0 and report["final_state"] == "rolled_back"
    assert report["shifts"][-1]["percent"] == 0
    assert max(s["percent"] for s in report["shifts"]) == 25


async def test_an_interactive_rehearsal_checks_the_person_at_the_terminal_like_a_button_click(
    tmp_path: Path,
) -> None:
    answers = iter(["U0NOBODY", "y", "U0REL1", "y"] + [""] * 100)
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return next(answers)

    status, report, _ = await _rehearse("payments-tokenization", tmp_path, interactive=True, ask=ask)

    assert asked, "the rehearsal never asked at a hold"
    assert any(r["user"] == "U0NOBODY" for r in report["refusals"])
    first = report["holds"][0]
    assert first["releases"][0]["user"] == "U0REL1"
    assert status == 0


def test_rehearse_on_a_bad_plan_exits_2_naming_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (EXAMPLES / "payments-tokenization.yaml")
        .read_text()
        .replace("owner: release-eng", "owner: nobody", 1)
    )
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "rehearse", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "bad.yaml" in done.stdout + done.stderr and "owner" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("name", ["ga-canary-hypercare"])
async def test_the_ga_rehearsal_runs_its_72_hours_of_hyper_care_and_completes(
    tmp_path: Path, name: str
) -> None:
    status, report, _ = await _rehearse(name, tmp_path)

    assert status == 0 and report["final_state"] == "completed"
    assert [s["percent"] for s in report["shifts"]] == [1, 10, 25, 50, 75, 100]


async def test_a_parity_drift_at_the_widen_hold_is_acted_on_during_it_and_nothing_shifts_while_it_fails(
    tmp_path: Path,
) -> None:
    status, report, _ = await _rehearse("parity-drift-at-hold", tmp_path)

    assert status == 0 and report["final_state"] == "completed"
    drift_from = datetime.fromisoformat("2026-11-24T21:30:00-05:00")
    recovered = datetime.fromisoformat("2026-11-24T21:48:00-05:00")
    gate_holds = [
        h for h in report["holds"] if h["checkpoint"] == "widen" and "settlement-parity" in h["reason"]
    ]
    assert gate_holds, "the parity drift was not acted on during the widen hold"
    first = min(datetime.fromisoformat(h["opened_at"]) for h in gate_holds)
    assert drift_from <= first <= drift_from + timedelta(minutes=1)
    assert "watched" in gate_holds[0]["reason"] and "0.99" in gate_holds[0]["reason"]
    widened = [s for s in report["shifts"] if s["cohort"] == "all-merchants" and s["percent"] > 0]
    assert widened and all(datetime.fromisoformat(s["at"]) >= recovered for s in widened)
    assert [s["percent"] for s in widened] == [10, 100]


async def test_the_parallel_rehearsal_runs_both_cohorts_side_by_side_as_the_packet_draws_them(
    tmp_path: Path,
) -> None:
    status, report, _ = await _rehearse("parallel-branches", tmp_path)

    assert status == 0 and report["final_state"] == "completed"
    actual = {a["checkpoint"]: a for a in report["actuals"]}
    # Both canaries and the merchants' notice start together once the preflight is done.
    starts = {actual[c]["started_at"] for c in ("canary-a", "canary-b", "tell-merchants")}
    assert starts == {actual["preflight"]["ended_at"]}
    # Each branch ends on its own soak: B's 10 minutes before A's 15.
    assert actual["canary-b"]["ended_at"] < actual["canary-a"]["ended_at"]
    # Both cohorts widen at once after the release, and retirement waits for both.
    assert actual["widen-a"]["started_at"] == actual["widen-b"]["started_at"]
    assert actual["retire-legacy"]["started_at"] >= max(
        actual["widen-a"]["ended_at"], actual["widen-b"]["ended_at"]
    )
    shifts = sorted((s["at"], s["cohort"], s["percent"]) for s in report["shifts"])
    assert [(c, p) for _, c, p in shifts] == [
        ("merchant-a", 1),
        ("merchant-b", 1),
        ("merchant-a", 10),
        ("merchant-b", 10),
    ]
    assert shifts[0][0] == shifts[1][0] and shifts[2][0] == shifts[3][0]
