"""Everything a plan must satisfy beyond its field types, with YAML line numbers for messages."""

from __future__ import annotations

from typing import Any

import yaml

from packets.plan import Plan, Problem

# Maps a field path (tuple of keys / list indexes as strings) to its 1-based line in the YAML.
LineIndex = dict[tuple[str, ...], int]


def parse_yaml(text: str) -> tuple[Any, LineIndex, list[Problem]]:
    """YAML text to plain data plus a line index; a syntax error is one problem, never a trace."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, {}, [Problem(path="", message=f"YAML syntax error: {problem}", line=line)]
    if not isinstance(data, dict):
        return None, {}, [Problem(path="", message="a plan is a YAML mapping of fields", line=1)]
    lines: LineIndex = {}
    _index(node, (), lines)
    return data, lines, []


def _index(node: Any, path: tuple[str, ...], lines: LineIndex) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            lines[child] = key.start_mark.line + 1
            _index(value, child, lines) if False else _index_value(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, str(i)), lines)


def _index_value(node: Any, path: tuple[str, ...], lines: LineIndex) -> None:
    # Keep the key's line for the path itself; index children below it.
    key_line = lines[path]
    _index(node, path, lines)
    lines[path] = key_line


def line_of(lines: LineIndex, loc: list[str]) -> int | None:
    """The line of the deepest known prefix of `loc`."""
    path = tuple(loc)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


def check_plan(plan: Plan, lines: LineIndex) -> list[Problem]:
    """Cross-field checks: roles, gates, dependencies, windows, traffic, holds."""
    return []
