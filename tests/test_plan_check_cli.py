"""`cutover-bot plan check FILE`: refused plans say where and why on stderr, exit 2, no traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.cli import main
from tests.test_plan_checks import BAD_PLANS, Bad, broken, dump, small_plan

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["plan", "check", str(path)])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("case", BAD_PLANS, ids=lambda c: c.name)
def test_each_bad_plan_exits_2_naming_file_line_and_field(
    case: Bad, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "bad.yaml"
    plan.write_text(broken(case), encoding="utf-8")
    status, out, err = check(plan, capsys)
    assert status == 2
    assert out == ""
    assert "Traceback" not in err
    pattern = re.compile(rf"^{re.escape(str(plan))}:(\d+): {re.escape(case.path)}: (.+)$", re.MULTILINE)
    found = pattern.search(err)
    assert found, err
    assert case.says in found.group(2)
    for line in err.splitlines():
        assert line.startswith(f"{plan}:")


def test_a_missing_file_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    status, out, err = check(missing, capsys)
    assert (status, out) == (2, "")
    assert err.splitlines() == [f"{missing}: cannot read: No such file or directory"]


def test_a_directory_is_not_readable_as_a_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = check(tmp_path, capsys)
    assert status == 2
    assert err.startswith(f"{tmp_path}: cannot read: ")
    assert len(err.splitlines()) == 1


def test_a_file_that_is_not_utf8_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "latin1.yaml"
    plan.write_bytes("title: café".encode("latin-1"))
    status, _, err = check(plan, capsys)
    assert status == 2
    assert err.startswith(f"{plan}: cannot read: not UTF-8 text")


def test_a_yaml_syntax_error_is_reported_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "syntax.yaml"
    plan.write_text("plan: x\ntitle: [oops\n", encoding="utf-8")
    status, _, err = check(plan, capsys)
    assert status == 2
    assert re.match(rf"^{re.escape(str(plan))}:\d+: \(top\): YAML syntax error: ", err)


def test_a_valid_plan_prints_its_id_title_revision_and_timeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "small.yaml"
    plan.write_text(dump(small_plan()), encoding="utf-8")
    status, out, err = check(plan, capsys)
    assert status == 0
    assert err == ""
    assert "plan: small-cutover" in out
    assert "title: A small cutover" in out
    assert re.search(r"^revision: [0-9a-f]{64}$", out, re.MULTILINE)
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.startswith("│")}
    assert list(rows) == ["prep", "canary", "widen", "full"]
    prep = [cell.strip() for cell in rows["prep"].split("│")[1:-1]]
    assert prep == ["prep", "release-eng", "U0ENG1", "21:00", "21:15", "yes", "plan: release-authority"]
    widen = [cell.strip() for cell in rows["widen"].split("│")[1:-1]]
    assert widen[1:3] == ["release-authority", "U0REL1"]
    assert widen[6] == "plan: release-authority"


def test_a_checkpoint_after_midnight_shows_its_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = small_plan()
    data["checkpoints"][3]["soak"] = "4h"
    data["window"]["end"] = "2026-11-25T03:00:00-05:00"  # the window reaches past midnight too
    plan = tmp_path / "late.yaml"
    plan.write_text(dump(data), encoding="utf-8")
    status, out, _ = check(plan, capsys)
    assert status == 0
    assert "01:25 (11-25)" in out


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_plan_passes_plan_check(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = check(example, capsys)
    assert (status, err) == (0, "")
    assert re.search(r"^revision: [0-9a-f]{64}$", out, re.MULTILINE)


def test_the_examples_are_all_there() -> None:
    assert {p.name for p in EXAMPLES} >= {
        "payments-tokenization.yaml",
        "command-window-resequencing.yaml",
        "ga-canary-hypercare.yaml",
        "ga-canary-breach.yaml",
    }


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "cutover-bot"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


def test_the_installed_command_refuses_a_bad_plan_without_a_traceback(tmp_path: Path) -> None:
    data = small_plan()
    data["checkpoints"][1]["after"] = ["prepp"]
    data["checkpoints"][0]["owner"] = "secrity"
    plan = tmp_path / "bad.yaml"
    plan.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    done = subprocess.run(
        [*_cli(), "plan", "check", str(plan)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert any(
        re.match(rf"^{re.escape(str(plan))}:\d+: checkpoints\.0\.owner: unknown role 'secrity'", x)
        for x in lines
    )
    assert any(
        re.match(rf"^{re.escape(str(plan))}:\d+: checkpoints\.1\.after\.0: unknown checkpoint", x)
        for x in lines
    )


def test_the_installed_command_accepts_the_payments_example() -> None:
    done = subprocess.run(
        [*_cli(), "plan", "check", "examples/payments-tokenization.yaml"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert "retire-legacy" in done.stdout
    assert "release-authority, payments-risk (all)" in done.stdout
