"""From plan text to a `Plan`: the one way in.

`load_plan(text, source=...)` returns a `Plan` or raises `PlanInvalid` carrying every problem
found, each as `FILE: field.path: what is wrong`, in file order. Reading the file is the caller's
job; this module does no I/O.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from packets.plan import Plan, PlanInvalid, Problem
from packets.plan_checks import LineIndex, check_plan, line_of, parse_yaml


def load_plan(text: str, *, source: str = "<plan>") -> Plan:
    """Parse and validate plan YAML text; raise `PlanInvalid` listing every problem.

    Never raises anything else, whatever the text: YAML errors, wrong types, unknown fields and
    broken cross-references all come back as problems with a field path and a line.
    """
    data, lines, problems = parse_yaml(text)
    if data is None:
        raise PlanInvalid(source, problems)
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        found = problems + _pydantic_problems(exc, lines)
        raise PlanInvalid(source, _in_file_order(found)) from None
    problems = _in_file_order(problems + check_plan(plan, lines))
    if problems:
        raise PlanInvalid(source, problems)
    return plan


def _in_file_order(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line is None, p.line or 0))


# Python field names that the plan file spells differently.
_FILE_NAMES = {"pass_": "pass", "for_": "for"}
# Segments pydantic adds to a location that are not fields (union members, validators).
_SCHEMA_SEGMENT = re.compile(r"^(?:function-[a-z]+|nullable|union|tagged-union|chain|lax-or-strict)\[.*\]$")


def _pydantic_problems(exc: ValidationError, lines: LineIndex) -> list[Problem]:
    problems: list[Problem] = []
    for error in exc.errors():
        loc: list[str] = []
        key_error = False
        for part in error["loc"]:
            text = str(part)
            if text == "[key]":
                key_error = True
            elif not (isinstance(part, str) and _SCHEMA_SEGMENT.match(text)):
                loc.append(_FILE_NAMES.get(text, text))
        path = ".".join(loc)
        kind = error["type"]
        if key_error:
            message = "names here must be text"
        elif kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "missing":
            message = "required field is missing"
        elif kind == "string_pattern_mismatch":
            message = "use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
        else:
            message = _human(str(error["msg"]))
        problems.append(Problem(path=path, message=message, line=line_of(lines, loc)))
    return problems


def _human(message: str) -> str:
    """pydantic's wording, trimmed to what a plan author needs."""
    message = message.removeprefix("Value error, ")
    message = re.sub(r" or instance of \w+$", "", message)
    return message.replace("Input should be ", "should be ", 1)
