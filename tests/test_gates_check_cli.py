"""`cutover-bot gates check PLAN`: each gate once against the plan's telemetry, exit 0/1/2."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.cli import main
from tests.prometheus_harness import PrometheusStack, free_port, running_prometheus

PLAN = """\
plan: payments-tokenization-cutover
title: Card-token lookups move to the tokenization service
channel: C0WARROOM
window: {{start: 2026-11-24T21:00:00-05:00, end: 2026-11-25T01:00:00-05:00}}
roles:
  release-authority: {{primary: U0REL1}}
  release-eng: {{primary: U0ENG1}}
authority:
  signoff: [release-authority]
  adopt_packets: [release-authority]
  start_and_rollback: [release-authority, release-eng]
telemetry: {telemetry}
gates:
  auth-success:       {{query: "{q}auth_success_ratio", pass: ">= 0.995", on_fail: rollback_cohort}}
  lookup-latency-p95: {{query: "{q}lookup_latency_p95_seconds", pass: "<= 0.25", on_fail: hold}}
  fallback-health:    {{query: "{q}fallback_health", pass: ">= 1", on_fail: freeze}}
checkpoints:
  - {{id: key-replication, title: Key replication confirmed, owner: release-eng, duration: 15m}}
  - {{id: canary-a, title: Shift merchant cohort A, owner: release-eng, after: [key-replication],
     traffic: {{percent: 1, cohort: merchant-a}}, soak: 20m, gates: [auth-success, lookup-latency-p95]}}
  - {{id: widen, title: Widen, owner: release-authority, after: [canary-a],
     traffic: {{percent: 25, cohort: merchant-a}}, gates: [fallback-health]}}
rehearsal:
  telemetry: {{lookup-latency-p95: [[0m, 0.12], [35m, 0.31], [50m, 0.14]]}}
"""


def write_plan(tmp_path: Path, telemetry: str, *, q: str = "cutover_") -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.format(telemetry=telemetry, q=q))
    return path


def file_plan(tmp_path: Path, values: str) -> Path:
    (tmp_path / "telemetry.yaml").write_text(values)
    return write_plan(tmp_path, "{provider: file, path: telemetry.yaml}")


def check_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    status = main(["gates", "check", *args, "--json"])
    out = capsys.readouterr().out
    return status, json.loads(out) if out else []


HEALTHY = "auth-success: 0.999\nlookup-latency-p95: 0.12\nfallback-health: 1\n"


def test_every_gate_giving_a_number_exits_zero_with_one_json_entry_per_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, checks = check_json(capsys, str(file_plan(tmp_path, HEALTHY)))

    assert status == 0
    assert checks[0] == {
        "gate": "auth-success",
        "query": "cutover_auth_success_ratio",
        "threshold": ">= 0.995",
        "value": 0.999,
        "outcome": "pass",
        "reason": "0.999 >= 0.995",
        "on_failure": "A failure would roll the cohort back at once.",
    }
    assert [(c["gate"], c["outcome"]) for c in checks] == [
        ("auth-success", "pass"),
        ("lookup-latency-p95", "pass"),
        ("fallback-health", "pass"),
    ]


def test_a_failing_gate_is_reported_but_still_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = file_plan(tmp_path, "auth-success: 0.97\nlookup-latency-p95: 0.12\nfallback-health: 1\n")

    status, checks = check_json(capsys, str(plan))

    assert status == 0
    assert checks[0]["outcome"] == "fail"
    assert checks[0]["reason"] == "0.97 is not >= 0.995"


def test_a_gate_without_data_exits_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = file_plan(tmp_path, "auth-success: 0.999\nlookup-latency-p95: null\n")

    status, checks = check_json(capsys, str(plan))

    assert status == 1
    outcomes = {c["gate"]: (c["outcome"], c["value"]) for c in checks}
    assert outcomes == {
        "auth-success": ("pass", 0.999),
        "lookup-latency-p95": ("no-data", None),
        "fallback-health": ("no-data", None),
    }
    assert checks[2]["reason"].startswith(f"gate fallback-health is not in telemetry file {tmp_path}")


def test_a_checkpoint_limits_the_check_to_its_own_gates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = file_plan(tmp_path, "auth-success: 0.999\nlookup-latency-p95: 0.12\n")

    status, checks = check_json(capsys, str(plan), "--checkpoint", "canary-a")

    assert status == 0
    assert [c["gate"] for c in checks] == ["auth-success", "lookup-latency-p95"]


def test_a_checkpoint_without_gates_checks_nothing_and_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, checks = check_json(capsys, str(file_plan(tmp_path, "")), "--checkpoint", "key-replication")

    assert (status, checks) == (0, [])


def test_an_unknown_checkpoint_exits_two_and_names_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["gates", "check", str(file_plan(tmp_path, HEALTHY)), "--checkpoint", "canary-z"])

    err = capsys.readouterr().err
    assert status == 2
    assert "unknown checkpoint 'canary-z'" in err and "canary-a" in err


def test_an_invalid_plan_exits_two_with_every_problem_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        PLAN.format(telemetry="{provider: file, path: t.yaml}", q="").replace('">= 1"', '"about 1"')
    )

    status = main(["gates", "check", str(path)])

    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert f"{path}:" in captured.err and "gates.fallback-health.pass" in captured.err


def test_a_plan_file_that_cannot_be_read_exits_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["gates", "check", str(tmp_path / "missing.yaml")])

    assert status == 2
    assert "cannot read plan" in capsys.readouterr().err


def test_a_bad_at_exits_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["gates", "check", str(file_plan(tmp_path, HEALTHY)), "--at", "tomorrow"])

    assert status == 2
    assert "--at" in capsys.readouterr().err


def test_the_table_shows_each_gate_with_its_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = file_plan(tmp_path, "auth-success: 0.97\nlookup-latency-p95: 0.12\n")

    status = main(["gates", "check", str(plan)])

    out = capsys.readouterr().out
    assert status == 1
    for text in ("auth-success", "lookup-latency-p95", "fallback-health", "fail", "no-data", "0.97"):
        assert text in out
    assert "3 gates: 1 pass, 1 fail, 1 no-data" in out


def test_the_simulated_provider_answers_at_a_moment_of_the_rehearsal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(tmp_path, "{provider: simulated}")

    status, checks = check_json(capsys, str(plan), "--at", "+40m")

    assert status == 0
    latency = next(c for c in checks if c["gate"] == "lookup-latency-p95")
    assert (latency["value"], latency["outcome"]) == (0.31, "fail")
    assert latency["reason"] == "0.31 is not <= 0.25 (rehearsal timeline from +35m)"


def test_an_unreachable_prometheus_exits_one_with_connection_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    plan = write_plan(tmp_path, f"{{provider: prometheus, url: 'http://127.0.0.1:{port}', timeout: 2s}}")

    status, checks = check_json(capsys, str(plan))

    assert status == 1
    assert {c["outcome"] for c in checks} == {"no-data"}
    assert all(c["reason"].startswith(f"connection refused to 127.0.0.1:{port}") for c in checks)


# --- against a real Prometheus -------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PrometheusStack]:
    async with running_prometheus(tmp_path_factory.mktemp("prometheus")) as running:
        yield running


async def run_cli(*args: str) -> int:
    # In a thread: the command runs its own event loop, and this loop must keep serving the
    # exporter while Prometheus scrapes it.
    return await asyncio.to_thread(main, ["gates", "check", *args])


@pytest.mark.prometheus
@pytest.mark.asyncio(loop_scope="module")
async def test_gates_check_reads_a_real_prometheus(
    stack: PrometheusStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.exporter.set("cli_auth_success_ratio", 0.999)
    stack.exporter.set("cli_lookup_latency_p95_seconds", 0.31)
    stack.exporter.set("cli_fallback_health", 1)
    await stack.prometheus.wait_for_value("cli_auth_success_ratio", 0.999)
    await stack.prometheus.wait_for_value("cli_lookup_latency_p95_seconds", 0.31)
    await stack.prometheus.wait_for_value("cli_fallback_health", 1)
    plan = write_plan(tmp_path, f"{{provider: prometheus, url: '{stack.url}', timeout: 2s}}", q="cli_")

    status = await run_cli(str(plan), "--json")

    checks = json.loads(capsys.readouterr().out)
    assert status == 0
    assert [(c["gate"], c["value"], c["outcome"]) for c in checks] == [
        ("auth-success", 0.999, "pass"),
        ("lookup-latency-p95", 0.31, "fail"),
        ("fallback-health", 1.0, "pass"),
    ]


@pytest.mark.prometheus
@pytest.mark.asyncio(loop_scope="module")
async def test_gates_check_exits_one_when_a_metric_is_gone_from_prometheus(
    stack: PrometheusStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.exporter.set("gone_auth_success_ratio", 0.999)
    stack.exporter.set("gone_lookup_latency_p95_seconds", 0.1)
    await stack.prometheus.wait_for_value("gone_auth_success_ratio", 0.999)
    await stack.prometheus.wait_for_value("gone_lookup_latency_p95_seconds", 0.1)
    plan = write_plan(tmp_path, f"{{provider: prometheus, url: '{stack.url}', timeout: 2s}}", q="gone_")

    status = await run_cli(str(plan), "--json", "--checkpoint", "canary-a")
    before = json.loads(capsys.readouterr().out)
    stack.exporter.remove("gone_lookup_latency_p95_seconds")
    await stack.prometheus.wait_for_series("gone_lookup_latency_p95_seconds", 0)
    status_after = await run_cli(str(plan), "--json", "--checkpoint", "canary-a")
    after = json.loads(capsys.readouterr().out)

    assert (status, [c["outcome"] for c in before]) == (0, ["pass", "pass"])
    assert (status_after, [c["outcome"] for c in after]) == (1, ["pass", "no-data"])
    assert after[1]["reason"].startswith("no series returned")


def test_each_gate_says_the_action_a_failure_would_take_and_whether_for_or_a_baseline_is_involved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = file_plan(tmp_path, HEALTHY + "lookup-latency-p95@baseline: 0.2\n")
    text = path.read_text()
    text = text.replace(
        "on_fail: rollback_cohort}", "on_fail: rollback_cohort, for: 10m, failure_limit: 2}", 1
    )
    text = text.replace(
        'pass: "<= 0.25", on_fail: hold}', 'pass: "<= 2x baseline", baseline: legacy_p95, on_fail: hold}', 1
    )
    path.write_text(text)

    status, checks = check_json(capsys, str(path))

    assert status == 0
    assert checks[0]["on_failure"] == (
        "A failure would roll the cohort back once it has failed for 10m, "
        "after more than 2 failing readings in the stage."
    )
    assert checks[1]["outcome"] == "pass" and "baseline 0.2" in checks[1]["reason"]
    assert checks[1]["on_failure"] == (
        "A failure would hold the checkpoint at once, compared with the baseline legacy_p95."
    )
