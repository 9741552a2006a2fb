"""Plan rules: every bad plan is refused with its field path, a short message and its line.

`BAD_PLANS` builds each bad plan by mutating one small valid plan; tests/test_plan_check_cli.py
feeds the same cases through `cutover-bot plan check`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packets.plan import Checkpoint, Plan, PlanInvalid, Problem
from packets.plan_checks import find_cycles, line_of, parse_pass, parse_yaml
from packets.plan_load import load_plan

PlanData = dict[str, Any]


def small_plan() -> PlanData:
    """A valid plan using every rule's fields once: preflight, canary, hold, full shift."""
    return {
        "plan": "small-cutover",
        "title": "A small cutover",
        "channel": "C0TEST",
        "window": {"start": "2026-11-24T21:00:00-05:00", "end": "2026-11-25T01:00:00-05:00"},
        "roles": {
            "release-authority": {"primary": "U0REL1", "delegates": ["U0REL2"]},
            "release-eng": {"primary": "U0ENG1"},
            "security": {"primary": "U0SEC1", "delegates": ["U0SEC2"]},
        },
        "authority": {
            "signoff": ["release-authority"],
            "adopt_packets": ["release-authority"],
            "change_delegates": ["release-authority"],
            "start_and_rollback": ["release-authority", "release-eng"],
        },
        "telemetry": {"provider": "prometheus", "url": "http://127.0.0.1:9090"},
        "gates": {
            "auth-success": {"query": "auth_ok_ratio", "pass": ">= 0.995", "on_fail": "rollback_cohort"}
        },
        "actuator": {"kind": "webhook", "url": "http://127.0.0.1:8081/traffic"},
        "checkpoints": [
            {
                "id": "prep",
                "title": "Preparation",
                "owner": "release-eng",
                "observers": ["security"],
                "duration": "15m",
                "protected": True,
                "window": {
                    "not_before": "2026-11-24T21:00:00-05:00",
                    "not_after": "2026-11-24T22:00:00-05:00",
                },
            },
            {
                "id": "canary",
                "title": "Canary",
                "owner": "release-eng",
                "after": ["prep"],
                "traffic": {"percent": 5, "cohort": "merchant-a"},
                "soak": "10m",
                "gates": ["auth-success"],
            },
            {
                "id": "widen",
                "title": "Release to widen",
                "owner": "release-authority",
                "after": ["canary"],
                "hold": {"release_by": ["release-authority"]},
            },
            {
                "id": "full",
                "title": "Everyone",
                "owner": "release-eng",
                "after": ["widen"],
                "traffic": {"percent": 100, "cohort": "all"},
                "soak": "10m",
                "gates": ["auth-success"],
            },
        ],
        "hypercare": {"gates": ["auth-success"], "cadence": [{"every": "5m", "until": "1h"}]},
        "rehearsal": {"telemetry": {"auth-success": [["0m", 0.999]]}, "actions": []},
    }


def dump(data: PlanData) -> str:
    return yaml.safe_dump(data, sort_keys=False)


@dataclass(frozen=True)
class Bad:
    """One bad plan: how to break the small plan, where the problem is, what it says."""

    name: str
    mutate: Callable[[PlanData], None]
    path: str
    says: str
    line_has: str  # text found on the line the problem points at


def _set(*keys: str | int, value: Any) -> Callable[[PlanData], None]:
    def mutate(data: PlanData) -> None:
        target: Any = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return mutate


def _delete(*keys: str | int) -> Callable[[PlanData], None]:
    def mutate(data: PlanData) -> None:
        target: Any = data
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return mutate


BAD_PLANS: list[Bad] = [
    Bad(
        "duplicate checkpoint id",
        _set("checkpoints", 2, "id", value="canary"),
        "checkpoints.2.id",
        "duplicate checkpoint id 'canary' (first at checkpoints.1)",
        "id: canary",
    ),
    Bad(
        "checkpoint id taken by hyper-care",
        _set("checkpoints", 3, "id", value="hypercare"),
        "checkpoints.3.id",
        "'hypercare' names this plan's hyper-care checks; choose another checkpoint id",
        "id: hypercare",
    ),
    Bad(
        "after names an unknown checkpoint",
        _set("checkpoints", 1, "after", value=["prepp"]),
        "checkpoints.1.after.0",
        "unknown checkpoint 'prepp'",
        "prepp",
    ),
    Bad(
        "a cycle in after",
        _set("checkpoints", 0, "after", value=["full"]),
        "checkpoints.0.after.0",
        "cycle in after: prep -> full -> widen -> canary -> prep",
        "- full",
    ),
    Bad(
        "a checkpoint that waits on itself",
        _set("checkpoints", 1, "after", value=["canary"]),
        "checkpoints.1.after.0",
        "cycle in after: canary -> canary",
        "- canary",
    ),
    Bad(
        "unknown owner role",
        _set("checkpoints", 0, "owner", value="secrity"),
        "checkpoints.0.owner",
        "unknown role 'secrity' (roles: release-authority, release-eng, security)",
        "owner: secrity",
    ),
    Bad(
        "unknown observer role",
        _set("checkpoints", 0, "observers", value=["payments-risk"]),
        "checkpoints.0.observers.0",
        "unknown role 'payments-risk'",
        "payments-risk",
    ),
    Bad(
        "unknown hold release role",
        _set("checkpoints", 2, "hold", "release_by", value=["release-authorty"]),
        "checkpoints.2.hold.release_by.0",
        "unknown role 'release-authorty'",
        "release-authorty",
    ),
    Bad(
        "unknown signoff role",
        _set("authority", "signoff", value=["release-authority", "risk"]),
        "authority.signoff.1",
        "unknown role 'risk'",
        "- risk",
    ),
    Bad(
        "unknown adopt_packets role",
        _set("authority", "adopt_packets", value=["cto"]),
        "authority.adopt_packets.0",
        "unknown role 'cto'",
        "- cto",
    ),
    Bad(
        "unknown change_delegates role",
        _set("authority", "change_delegates", value=["hr"]),
        "authority.change_delegates.0",
        "unknown role 'hr'",
        "- hr",
    ),
    Bad(
        "unknown role switched in per-role change_delegates",
        _set("authority", "change_delegates", value={"hr": ["release-authority"]}),
        "authority.change_delegates.hr",
        "unknown role 'hr'",
        "hr:",
    ),
    Bad(
        "unknown switching role in per-role change_delegates",
        _set("authority", "change_delegates", value={"security": ["security", "cto"]}),
        "authority.change_delegates.security.1",
        "unknown role 'cto'",
        "- cto",
    ),
    Bad(
        "unknown start_and_rollback role",
        _set("authority", "start_and_rollback", value=["ops"]),
        "authority.start_and_rollback.0",
        "unknown role 'ops'",
        "- ops",
    ),
    Bad(
        "unknown pause_and_freeze role",
        _set("authority", "pause_and_freeze", value=["sre"]),
        "authority.pause_and_freeze.0",
        "unknown role 'sre'",
        "- sre",
    ),
    Bad(
        "unknown hypercare gate",
        _set("hypercare", "gates", value=["latency"]),
        "hypercare.gates.0",
        "unknown gate 'latency' (gates: auth-success)",
        "- latency",
    ),
    Bad(
        "unknown checkpoint gate",
        _set("checkpoints", 1, "gates", value=["auth-sucess"]),
        "checkpoints.1.gates.0",
        "unknown gate 'auth-sucess' (gates: auth-success); did you mean 'auth-success'?",
        "auth-sucess",
    ),
    Bad(
        "delegate equal to the primary",
        _set("roles", "release-authority", "delegates", value=["U0REL2", "U0REL1"]),
        "roles.release-authority.delegates.1",
        "delegate 'U0REL1' is already the primary",
        "- U0REL1",
    ),
    Bad(
        "delegate listed twice",
        _set("roles", "security", "delegates", value=["U0SEC2", "U0SEC2"]),
        "roles.security.delegates.1",
        "delegate 'U0SEC2' is listed twice",
        "- U0SEC2",
    ),
    Bad(
        "window end before start",
        _set("window", "end", value="2026-11-24T20:00:00-05:00"),
        "window.end",
        "not after it starts",
        "end:",
    ),
    Bad(
        "window end equal to start",
        _set("window", "end", value="2026-11-24T21:00:00-05:00"),
        "window.end",
        "not after it starts",
        "end:",
    ),
    Bad(
        "not_after before not_before",
        _set("checkpoints", 0, "window", "not_after", value="2026-11-24T20:30:00-05:00"),
        "checkpoints.0.window.not_after",
        "is before not_before",
        "not_after:",
    ),
    Bad(
        "traffic goes down",
        _set("checkpoints", 3, "traffic", "percent", value=2),
        "checkpoints.3.traffic.percent",
        "traffic goes down from 5% (canary) to 2%",
        "percent: 2",
    ),
    Bad(
        "a hold with no release roles",
        _set("checkpoints", 2, "hold", "release_by", value=[]),
        "checkpoints.2.hold.release_by",
        "a hold needs at least one role",
        "release_by",
    ),
    Bad(
        "gate pass in words",
        _set("gates", "auth-success", "pass", value="at least 0.995"),
        "gates.auth-success.pass",
        "cannot read 'at least 0.995'",
        "pass:",
    ),
    Bad(
        "gate pass with a reversed operator",
        _set("gates", "auth-success", "pass", value="=> 0.995"),
        "gates.auth-success.pass",
        "cannot read '=> 0.995'",
        "pass:",
    ),
    Bad(
        "gate pass without a number",
        _set("gates", "auth-success", "pass", value=">= high"),
        "gates.auth-success.pass",
        "OP NUMBER",
        "pass:",
    ),
    Bad(
        "rehearsal telemetry for an unknown gate",
        _set("rehearsal", "telemetry", value={"latency": [["0m", 1]]}),
        "rehearsal.telemetry.latency",
        "unknown gate 'latency'",
        "latency:",
    ),
    Bad(
        "prometheus without url",
        _set("telemetry", value={"provider": "prometheus"}),
        "telemetry.url",
        "prometheus telemetry needs a url",
        "telemetry:",
    ),
    Bad(
        "file telemetry without path",
        _set("telemetry", value={"provider": "file"}),
        "telemetry.path",
        "file telemetry needs a path",
        "telemetry:",
    ),
    Bad(
        "webhook actuator without url",
        _set("actuator", value={"kind": "webhook"}),
        "actuator.url",
        "a webhook actuator needs a url",
        "actuator:",
    ),
    # Field types, caught by the pydantic models and reported in the same dotted form.
    Bad(
        "an unknown field",
        _set("checkpoints", 0, "colour", value="red"),
        "checkpoints.0.colour",
        "unknown field",
        "colour: red",
    ),
    Bad(
        "a missing field",
        _delete("checkpoints", 0, "owner"),
        "checkpoints.0.owner",
        "required field is missing",
        "id: prep",
    ),
    Bad(
        "a missing gate pass, named as in the file",
        _delete("gates", "auth-success", "pass"),
        "gates.auth-success.pass",
        "required field is missing",
        "auth-success:",
    ),
    Bad(
        "a gate pass of the wrong type",
        _set("gates", "auth-success", "pass", value=[0.995]),
        "gates.auth-success.pass",
        "should be a valid string",
        "pass:",
    ),
    Bad(
        "a percent that is not a number",
        _set("checkpoints", 1, "traffic", "percent", value="lots"),
        "checkpoints.1.traffic.percent",
        "should be a valid number",
        "percent: lots",
    ),
    Bad(
        "a duration in words",
        _set("checkpoints", 0, "duration", value="fifteen"),
        "checkpoints.0.duration",
        "'fifteen' is not a duration",
        "duration: fifteen",
    ),
    Bad(
        "a time without an offset",
        _set("window", "start", value="2026-11-24T21:00:00"),
        "window.start",
        "timestamp needs an offset",
        "start:",
    ),
    Bad(
        "an unknown gate action",
        _set("gates", "auth-success", "on_fail", value="panic"),
        "gates.auth-success.on_fail",
        "should be 'pause', 'hold'",
        "on_fail: panic",
    ),
    Bad(
        "a readiness gate without a timeout",
        _set("gates", "auth-success", "kind", value="readiness"),
        "gates.auth-success.kind",
        "a readiness gate needs a timeout longer than 0",
        "kind: readiness",
    ),
    Bad(
        "a timeout on a gate that is not a readiness gate",
        _set("gates", "auth-success", "timeout", value="30m"),
        "gates.auth-success.timeout",
        "only a readiness gate (kind: readiness) has a timeout",
        "timeout: 30m",
    ),
    Bad(
        "a gate interval of zero",
        _set("gates", "auth-success", "interval", value="0m"),
        "gates.auth-success.interval",
        "interval must be longer than 0",
        "interval: 0m",
    ),
    Bad(
        "a negative failure limit",
        _set("gates", "auth-success", "failure_limit", value=-1),
        "gates.auth-success.failure_limit",
        "greater than or equal to 0",
        "failure_limit: -1",
    ),
    Bad(
        "a gate 'for' that is not a duration",
        _set("gates", "auth-success", "for", value="soon"),
        "gates.auth-success.for",
        "duration",
        "for: soon",
    ),
    Bad(
        "an unknown no-data policy on a gate",
        _set("gates", "auth-success", "no_data", value="shrug"),
        "gates.auth-success.no_data",
        "should be 'fail', 'hold', 'pass' or 'ignore'",
        "no_data: shrug",
    ),
    Bad(
        "an unknown gate kind",
        _set("gates", "auth-success", "kind", value="vibe"),
        "gates.auth-success.kind",
        "should be 'threshold' or 'readiness'",
        "kind: vibe",
    ),
    Bad(
        "a rehearsal value that is not a number",
        _set("rehearsal", "telemetry", "auth-success", value=[["0m", "x"]]),
        "rehearsal.telemetry.auth-success.0.1",
        "should be a valid number",
        "- x",
    ),
]


def broken(case: Bad) -> str:
    data = small_plan()
    case.mutate(data)
    return dump(data)


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(PlanInvalid) as refused:
        load_plan(text, source="bad.yaml")
    return refused.value.problems


def test_the_small_plan_is_valid() -> None:
    plan = load_plan(dump(small_plan()), source="small.yaml")
    assert isinstance(plan, Plan)
    assert [c.id for c in plan.checkpoints] == ["prep", "canary", "widen", "full"]


@pytest.mark.parametrize("case", BAD_PLANS, ids=lambda c: c.name)
def test_each_bad_plan_is_refused_with_its_field_path_message_and_line(case: Bad) -> None:
    text = broken(case)
    problems = problems_of(text)
    matching = [p for p in problems if p.path == case.path]
    assert matching, f"no problem at {case.path}: {[p.render('bad.yaml') for p in problems]}"
    problem = matching[0]
    assert case.says in problem.message
    assert problem.line is not None
    assert case.line_has in text.splitlines()[problem.line - 1]


@pytest.mark.parametrize("case", BAD_PLANS, ids=lambda c: c.name)
def test_a_bad_plan_renders_as_file_line_path_message(case: Bad) -> None:
    with pytest.raises(PlanInvalid) as refused:
        load_plan(broken(case), source="plans/bad.yaml")
    for line in refused.value.lines():
        assert line.startswith("plans/bad.yaml:")
    assert any(f": {case.path}: " in line for line in refused.value.lines())


def test_the_pass_alias_never_shows_as_pass_underscore() -> None:
    data = small_plan()
    del data["gates"]["auth-success"]["pass"]
    rendered = str(PlanInvalid("x", problems_of(dump(data))))
    assert "pass_" not in rendered
    assert "gates.auth-success.pass:" in rendered


def test_a_rolled_back_traffic_step_may_go_down() -> None:
    data = small_plan()
    data["checkpoints"][3]["traffic"] = {"percent": 0, "cohort": "all", "rollback": True}
    load_plan(dump(data))


def test_traffic_is_compared_only_between_traffic_checkpoints_in_list_order() -> None:
    data = small_plan()
    data["checkpoints"][3]["traffic"]["percent"] = 5  # equal is not a step down
    load_plan(dump(data))


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    data = small_plan()
    data["checkpoints"][0]["owner"] = "nobody"
    data["checkpoints"][1]["after"] = ["nothing"]
    data["window"]["end"] = "2026-11-24T20:00:00-05:00"
    problems = problems_of(dump(data))
    assert {p.path for p in problems} >= {"checkpoints.0.owner", "checkpoints.1.after.0", "window.end"}
    lines = [p.line or 0 for p in problems]
    assert lines == sorted(lines)


def test_a_long_role_list_is_cut_short_in_the_hint() -> None:
    data = small_plan()
    for n in range(12):
        data["roles"][f"extra-{n:02d}"] = {"primary": f"U0X{n:02d}"}
    data["checkpoints"][0]["owner"] = "zzz"
    (problem,) = [p for p in problems_of(dump(data)) if p.path == "checkpoints.0.owner"]
    assert problem.message.endswith(", ...)")


def test_a_role_listed_twice_in_one_list_is_named() -> None:
    data = small_plan()
    data["authority"]["signoff"] = ["release-authority", "release-authority"]
    (problem,) = problems_of(dump(data))
    assert (problem.path, problem.message) == (
        "authority.signoff.1",
        "role 'release-authority' is listed twice",
    )


def test_a_checkpoint_window_too_short_for_the_work_is_refused() -> None:
    data = small_plan()
    data["checkpoints"][0]["window"]["not_after"] = "2026-11-24T21:10:00-05:00"
    (problem,) = problems_of(dump(data))
    assert problem.path == "checkpoints.0.window"
    assert problem.message == "window is 10m but the checkpoint needs 15m (duration + soak)"


def test_a_plan_whose_planned_timeline_ends_after_the_window_is_refused_naming_the_checkpoint() -> None:
    data = small_plan()
    # prep 21:00-21:15, canary 21:15-21:25, widen (a hold), full 21:25-21:35: past a 21:30 end.
    data["window"]["end"] = "2026-11-24T21:30:00-05:00"
    (problem,) = problems_of(dump(data))
    assert problem.path == "checkpoints.3"
    assert problem.message == (
        "checkpoint 'full' is planned to end at 2026-11-24T21:35:00-05:00, "
        "after the window ends at 2026-11-24T21:30:00-05:00"
    )
    assert problem.line is not None and "id: full" in dump(data).splitlines()[problem.line - 1]


def test_only_the_first_checkpoint_to_overrun_the_window_is_named_not_everything_after_it() -> None:
    data = small_plan()
    data["window"]["end"] = "2026-11-24T21:20:00-05:00"
    (problem,) = problems_of(dump(data))
    assert problem.path == "checkpoints.1"
    assert problem.message.startswith("checkpoint 'canary' is planned to end at 2026-11-24T21:25:00-05:00")


def test_a_timeline_ending_exactly_at_the_window_end_is_accepted() -> None:
    data = small_plan()
    data["window"]["end"] = "2026-11-24T21:35:00-05:00"
    assert load_plan(dump(data), source="ok.yaml").window.end.hour == 21


def test_a_not_after_before_the_window_opens_is_refused() -> None:
    data = small_plan()
    data["checkpoints"][0]["window"] = {"not_after": "2026-11-24T20:00:00-05:00"}
    (problem,) = problems_of(dump(data))
    assert problem.path == "checkpoints.0.window.not_after"
    assert "before the window starts" in problem.message


def test_a_zero_gate_interval_is_refused() -> None:
    data = small_plan()
    data["gate_policy"] = {"interval": "0"}
    (problem,) = problems_of(dump(data))
    assert (problem.path, problem.message) == ("gate_policy.interval", "interval must be longer than 0")


def test_a_hypercare_cadence_must_widen_in_order() -> None:
    data = small_plan()
    data["hypercare"]["cadence"] = [{"every": "5m", "until": "24h"}, {"every": "15m", "until": "12h"}]
    (problem,) = problems_of(dump(data))
    assert problem.path == "hypercare.cadence.1.until"
    assert "must be later than the step before (1d)" in problem.message


def test_rehearsal_telemetry_out_of_time_order_is_refused() -> None:
    data = small_plan()
    data["rehearsal"]["telemetry"]["auth-success"] = [["10m", 0.99], ["5m", 0.999]]
    (problem,) = problems_of(dump(data))
    assert problem.path == "rehearsal.telemetry.auth-success.1.0"


def test_infinite_and_nan_values_are_refused_because_json_cannot_hash_them() -> None:
    data = small_plan()
    data["rehearsal"]["telemetry"]["auth-success"] = [["0m", float("nan")]]
    (problem,) = problems_of(dump(data))
    assert problem.path == "rehearsal.telemetry.auth-success.0.1"


# --- YAML -----------------------------------------------------------------------------------


def test_a_yaml_syntax_error_is_one_problem_with_a_line() -> None:
    (problem,) = problems_of("plan: x\ntitle: [unclosed\nchannel: C1\n")
    assert problem.message.startswith("YAML syntax error")
    assert problem.line is not None


def test_a_control_character_is_a_problem_on_its_line() -> None:
    (problem,) = problems_of("plan: x\ntitle: a\x07b\n")
    assert problem.line == 2
    assert "special characters are not allowed" in problem.message


def test_a_missing_top_level_field_still_has_a_line() -> None:
    data = small_plan()
    del data["channel"]
    (problem,) = problems_of(dump(data))
    assert (problem.path, problem.message, problem.line) == ("channel", "required field is missing", 1)


def test_an_unquoted_gate_condition_gets_a_hint_to_quote_it() -> None:
    text = dump(small_plan()).replace("pass: '>= 0.995'", "pass: >= 0.995")
    (problem,) = problems_of(text)
    assert 'quote gate conditions: pass: ">= 0.995"' in problem.message


def test_an_impossible_date_is_a_problem_with_a_line_not_a_crash() -> None:
    text = dump(small_plan()).replace("end: '2026-11-25T01:00:00-05:00'", "end: 2026-13-45T01:00:00-05:00")
    (problem,) = problems_of(text)
    assert "not a real date" in problem.message
    assert problem.line == text.splitlines().index("  end: 2026-13-45T01:00:00-05:00") + 1


def test_a_duplicate_yaml_key_is_refused_not_silently_overwritten() -> None:
    text = dump(small_plan()).replace(
        "  release-eng:\n    primary: U0ENG1\n",
        "  release-eng:\n    primary: U0ENG1\n  release-eng:\n    primary: U0ENG9\n",
    )
    problems = problems_of(text)
    assert [p.path for p in problems] == ["roles.release-eng"]
    assert problems[0].message.startswith("duplicate key 'release-eng' (first on line ")


@pytest.mark.parametrize("text", ["", "just words", "- a\n- b\n", "42", "~"])
def test_a_document_that_is_not_a_mapping_is_one_problem(text: str) -> None:
    (problem,) = problems_of(text)
    assert problem.message == "a plan is a YAML mapping of fields"


def test_a_self_referencing_alias_is_refused_without_hanging() -> None:
    problems = problems_of("plan: &loop [*loop]\n")
    assert problems


def test_deeply_nested_yaml_is_refused_without_a_crash() -> None:
    problems = problems_of("title: " + "[" * 5000 + "]" * 5000)
    assert problems


def test_the_line_index_points_at_keys_and_list_items() -> None:
    data, lines, problems = parse_yaml("a:\n  b: 1\n  c:\n    - x\n    - y\n")
    assert problems == []
    assert data == {"a": {"b": 1, "c": ["x", "y"]}}
    assert lines[("a",)] == 1
    assert lines[("a", "c")] == 3
    assert lines[("a", "c", "1")] == 5
    assert line_of(lines, ["a", "c", "1", "deeper"]) == 5
    assert line_of(lines, ["zzz"]) == 1  # a missing top-level field points at the document
    assert line_of({}, ["zzz"]) is None


# --- pieces ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        (">= 0.995", (">=", 0.995)),
        ("<=0.25", ("<=", 0.25)),
        ("< 5", ("<", 5.0)),
        (" == 1 ", ("==", 1.0)),
        ("> -1e-3", (">", -0.001)),
        (">= .5", (">=", 0.5)),
    ],
)
def test_a_gate_condition_is_an_operator_and_a_number(text: str, parsed: tuple[str, float]) -> None:
    assert parse_pass(text) == parsed


@pytest.mark.parametrize(
    "text", ["", ">=", "0.5", "=> 1", "!= 1", ">= nan", ">= inf", ">= 1 2", "≥ 1", ">= 0x10"]
)
def test_anything_else_is_not_a_gate_condition(text: str) -> None:
    assert parse_pass(text) is None


def test_cycles_are_named_once_from_their_first_checkpoint_in_the_plan() -> None:
    data = small_plan()
    data["checkpoints"][0]["after"] = ["full"]
    data["checkpoints"][2]["after"] = ["canary", "full"]  # a second, smaller cycle: widen <-> full
    checkpoints = [Checkpoint.model_validate(c) for c in data["checkpoints"]]
    assert find_cycles(checkpoints) == [
        ("prep", "full", "widen", "canary", "prep"),
        ("widen", "full", "widen"),
    ]


# --- never anything but PlanInvalid -----------------------------------------------------------

_YAML_ALPHABET = st.sampled_from(
    list(":-[]{},#&*!|>'\"%@`?~ \n\t") + list("abcpt019.") + ["\n  ", "- ", ": "]
)
_GARBAGE = st.one_of(
    st.text(max_size=300),
    st.lists(_YAML_ALPHABET, max_size=120).map("".join),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


def _outcome(text: str) -> None:
    try:
        load_plan(text, source="fuzz.yaml")
    except PlanInvalid as invalid:
        assert invalid.problems
        for line in invalid.lines():
            assert line.startswith("fuzz.yaml")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_GARBAGE)
def test_random_text_is_never_anything_but_plan_invalid(text: str) -> None:
    _outcome(text)


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["15m", "0", ">= 1", "release-eng", "prep", "2026-11-24T21:00:00-05:00"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += _paths(child, (*prefix, i))
    return found


_ALL_PATHS = _paths(small_plan())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_ALL_PATHS), _VALUES), min_size=1, max_size=3))
def test_any_value_anywhere_in_a_plan_gives_a_plan_or_plan_invalid(
    edits: list[tuple[tuple[Any, ...], Any]],
) -> None:
    data = small_plan()
    for path, value in edits:
        target: Any = data
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = copy.deepcopy(value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit replaced a parent
    _outcome(yaml.safe_dump(data, sort_keys=False))


def test_aliases_that_expand_to_billions_of_values_are_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 10)]
    (problem,) = problems_of("\n".join(lines) + "\n")
    assert "aliases expand this document to" in problem.message


def test_a_plan_may_use_an_anchor_to_repeat_a_gate_list() -> None:
    text = dump(small_plan()).replace(
        "  gates:\n  - auth-success\n", "  gates: &canary_gates\n  - auth-success\n", 1
    )
    text = text.replace("  gates:\n  - auth-success\n", "  gates: *canary_gates\n", 1)
    assert "*canary_gates" in text
    plan = load_plan(text)
    assert plan.checkpoints[3].gates == ["auth-success"]
