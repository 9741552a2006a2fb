"""Everything a plan must satisfy beyond its field types, with YAML line numbers for messages.

`parse_yaml` turns text into plain data plus a line index (field path -> line) and never lets a
YAML error escape as a traceback. `check_plan` runs the cross-field rules on a plan that already
has the right field types: references (roles, gates, checkpoints), the `after` graph, windows,
traffic steps, holds, gate conditions and the adapters' required settings. Every rule reports a
`Problem` with the dotted field path (`checkpoints.2.after.0`) and the line it came from, so a
release engineer can fix the file without reading code.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import yaml

from packets.bundle_checks import check_bundle
from packets.durations import format_duration
from packets.gates import GateSpec, GateSpecError
from packets.plan import HYPERCARE_CHECKPOINT, Checkpoint, Gate, Plan, Problem
from packets.timeline import Facts, build_packet

# A field path: mapping keys and list indexes, all as strings, e.g. ("checkpoints", "2", "after", "0").
FieldPath = tuple[str, ...]
# Maps a field path to its 1-based line in the YAML.
LineIndex = dict[FieldPath, int]

PASS_OPERATORS: tuple[str, ...] = (">=", ">", "<=", "<", "==")
# The one form of a gate condition: OP NUMBER. packets.gates parses the same form at run time.
_PASS = re.compile(r"^\s*(>=|<=|==|>|<)\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*$")
# More values than any plan needs (a 2,000-checkpoint plan has about 50,000).
MAX_VALUES = 1_000_000
# How many names a "(roles: ...)" hint lists before it stops being short.
_HINT_NAMES = 8


def parse_pass(text: str) -> tuple[str, float] | None:
    """`">= 0.995"` to `(">=", 0.995)`; None when the text is not of the form OP NUMBER."""
    match = _PASS.match(text)
    if match is None:
        return None
    return match.group(1), float(match.group(2))


# --- YAML -------------------------------------------------------------------------------------


class _PlanLoader(yaml.SafeLoader):
    """SafeLoader whose impossible dates are YAML errors with a line, not bare ValueErrors."""

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a real date and time ({exc})", node.start_mark
            ) from None


_PlanLoader.add_constructor("tag:yaml.org,2002:timestamp", _PlanLoader.construct_yaml_timestamp)


def parse_yaml(text: str) -> tuple[Any, LineIndex, list[Problem]]:
    """YAML text to plain data, a line index and problems; never raises for any text.

    Data is None when the text cannot be a plan at all (syntax error, not a mapping). Duplicate
    keys come back as problems alongside the data: YAML would silently keep the last one, and a
    second `gates:` or a role defined twice must not quietly replace the first.
    """
    lines: LineIndex = {}
    duplicates: list[Problem] = []
    try:
        data = _load(text, lines, duplicates)
    except yaml.YAMLError as exc:
        return None, {}, [_yaml_problem(exc, text)]
    except RecursionError:
        return None, {}, [Problem(path="", message="YAML is nested too deeply to be a plan", line=None)]
    except ValueError as exc:  # a tagged scalar PyYAML could not convert, e.g. `!!int x`
        return None, {}, [Problem(path="", message=f"YAML value error: {exc}", line=None)]
    if not isinstance(data, dict):
        return None, {}, [Problem(path="", message="a plan is a YAML mapping of fields", line=1)]
    return data, lines, duplicates


def _load(text: str, lines: LineIndex, duplicates: list[Problem]) -> Any:
    loader = _PlanLoader(text)  # the reader already refuses some characters here
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _index(node, (), lines, duplicates)
        size = _expanded_size(node, {}, set())
        if size > MAX_VALUES:
            raise yaml.YAMLError(f"aliases expand this document to {size:,} values; a plan has far fewer")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, memo: dict[int, int], active: set[int]) -> int:
    """How many values the document holds once every alias is expanded, as validation sees it.

    Aliases are shared, not copied, so a few lines of YAML can stand for billions of values
    ("billion laughs"); checking the size first keeps validation from walking them all.
    """
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:  # an alias to its own ancestor: validation reports the cycle
        return 1
    active.add(key)
    size = 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo, active) + _expanded_size(v, memo, active)
            if size > MAX_VALUES:
                break
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            size += _expanded_size(item, memo, active)
            if size > MAX_VALUES:
                break
    active.discard(key)
    memo[key] = size
    return size


def _yaml_problem(exc: yaml.YAMLError, text: str) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    if isinstance(exc, yaml.reader.ReaderError):  # a control character: it knows only its offset
        line = text.count("\n", 0, exc.position) + 1
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    message = f"YAML syntax error: {problem}"
    source_lines = text.splitlines()
    if line is not None and 0 < line <= len(source_lines) and re.search(r":\s*>", source_lines[line - 1]):
        # `pass: >= 0.995` unquoted: `>` starts a YAML block scalar. The commonest plan typo.
        message += ' (quote gate conditions: pass: ">= 0.995")'
    return Problem(path="", message=message, line=line)


def _index(node: yaml.Node, path: FieldPath, lines: LineIndex, duplicates: list[Problem]) -> None:
    """Record the line of every field path; a key's path points at the key's own line."""
    # Iterative, so a long but legal document cannot hit the recursion limit here.
    pending: list[tuple[yaml.Node, FieldPath]] = [(node, path)]
    seen: set[int] = set()
    while pending:
        current, at = pending.pop()
        lines.setdefault(at, current.start_mark.line + 1)
        if id(current) in seen:  # an alias: its lines belong to the anchor
            continue
        seen.add(id(current))
        if isinstance(current, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key, value in current.value:
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
                child = (*at, name)
                key_line = key.start_mark.line + 1
                if isinstance(key, yaml.ScalarNode) and name != "<<":
                    if name in first_line:
                        duplicates.append(
                            Problem(
                                path=_dotted(child),
                                message=f"duplicate key '{name}' (first on line {first_line[name]})",
                                line=key_line,
                            )
                        )
                    else:
                        first_line[name] = key_line
                lines.setdefault(child, key_line)
                # Children of the value are indexed below the key; the key keeps its own line.
                pending.append((value, child))
        elif isinstance(current, yaml.SequenceNode):
            for i, item in enumerate(current.value):
                pending.append((item, (*at, str(i))))


def line_of(lines: LineIndex, loc: Sequence[str]) -> int | None:
    """The line of the deepest known prefix of `loc`; a missing top-level field gets the first line."""
    path = tuple(loc)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def _dotted(path: Iterable[str]) -> str:
    return ".".join(path)


# --- cross-field rules --------------------------------------------------------------------------


class _Report:
    """Collects problems for one plan, looking up each field path's line once."""

    def __init__(self, lines: LineIndex) -> None:
        self._lines = lines
        self.problems: list[Problem] = []

    def add(self, path: Sequence[str | int], message: str) -> None:
        parts = tuple(str(p) for p in path)
        self.problems.append(Problem(path=_dotted(parts), message=message, line=line_of(self._lines, parts)))


def check_plan(plan: Plan, lines: LineIndex) -> list[Problem]:
    """Cross-field checks: roles, gates, dependencies, windows, traffic, holds, adapters.

    Returns every problem found, in file order (problems without a line last).
    """
    report = _Report(lines)
    _check_roles(plan, report)
    _check_checkpoint_ids(plan, report)
    _check_after(plan, report)
    _check_windows(plan, report)
    _check_traffic(plan, report)
    _check_gates(plan, report)
    _check_adapters(plan, report)
    _check_cadences(plan, report)
    _check_rehearsal(plan, report)
    for path, message in check_bundle(plan):
        report.add(path, message)
    if not report.problems:
        # Scheduling needs a sound plan (known references, no cycles): checked last, alone.
        _check_timeline_fits_window(plan, report)
    return sorted(report.problems, key=lambda p: (p.line is None, p.line or 0))


def _names(names: Iterable[str]) -> str:
    shown = list(names)
    if len(shown) > _HINT_NAMES:
        return ", ".join(shown[:_HINT_NAMES]) + ", ..."
    return ", ".join(shown)


def _unknown(kind: str, name: str, known: Sequence[str]) -> str:
    if not known:
        return f"unknown {kind} '{name}' (no {kind}s are defined)"
    message = f"unknown {kind} '{name}' ({kind}s: {_names(known)})"
    close = difflib.get_close_matches(name, known, n=1)
    return f"{message}; did you mean '{close[0]}'?" if close else message


def _check_references(
    report: _Report, path: FieldPath, names: Sequence[str], known: Sequence[str], kind: str
) -> None:
    """Each name in a list must be defined, and listed once."""
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name not in known:
            report.add((*path, str(i)), _unknown(kind, name, known))
        elif name in seen:
            report.add((*path, str(i)), f"{kind} '{name}' is listed twice")
        seen.add(name)


def _check_roles(plan: Plan, report: _Report) -> None:
    roles = list(plan.roles)
    for name, role in plan.roles.items():
        seen: set[str] = set()
        for i, user in enumerate(role.delegates):
            if user == role.primary:
                report.add(("roles", name, "delegates", i), f"delegate '{user}' is already the primary")
            elif user in seen:
                report.add(("roles", name, "delegates", i), f"delegate '{user}' is listed twice")
            seen.add(user)
    authority_lists = {
        "signoff": plan.authority.signoff,
        "adopt_packets": plan.authority.adopt_packets,
        "start_and_rollback": plan.authority.start_and_rollback,
        "pause_and_freeze": plan.authority.pause_and_freeze or [],
    }
    for field, names in authority_lists.items():
        _check_references(report, ("authority", field), names, roles, "role")
    change = plan.authority.change_delegates
    if isinstance(change, dict):
        for switched, switchers in change.items():
            if switched not in plan.roles:
                report.add(("authority", "change_delegates", switched), _unknown("role", switched, roles))
            _check_references(report, ("authority", "change_delegates", switched), switchers, roles, "role")
    else:
        _check_references(report, ("authority", "change_delegates"), change, roles, "role")
    for i, checkpoint in enumerate(plan.checkpoints):
        at: FieldPath = ("checkpoints", str(i))
        if checkpoint.owner not in plan.roles:
            report.add((*at, "owner"), _unknown("role", checkpoint.owner, roles))
        _check_references(report, (*at, "observers"), checkpoint.observers, roles, "role")
        if checkpoint.hold is not None:
            if not checkpoint.hold.release_by:
                report.add((*at, "hold", "release_by"), "a hold needs at least one role that may release it")
            _check_references(report, (*at, "hold", "release_by"), checkpoint.hold.release_by, roles, "role")


def _check_checkpoint_ids(plan: Plan, report: _Report) -> None:
    first: dict[str, int] = {}
    for i, checkpoint in enumerate(plan.checkpoints):
        if checkpoint.id in first:
            report.add(
                ("checkpoints", i, "id"),
                f"duplicate checkpoint id '{checkpoint.id}' (first at checkpoints.{first[checkpoint.id]})",
            )
        else:
            first[checkpoint.id] = i
        if checkpoint.id == HYPERCARE_CHECKPOINT and plan.hypercare is not None:
            # Hyper-care's gate results and holds are recorded under this name.
            report.add(
                ("checkpoints", i, "id"),
                f"'{HYPERCARE_CHECKPOINT}' names this plan's hyper-care checks; choose another checkpoint id",
            )


def _check_after(plan: Plan, report: _Report) -> None:
    ids = [c.id for c in plan.checkpoints]
    for i, checkpoint in enumerate(plan.checkpoints):
        _check_references(report, ("checkpoints", str(i), "after"), checkpoint.after, ids, "checkpoint")
    for cycle in find_cycles(plan.checkpoints):
        position = ids.index(cycle[0])
        edge = plan.checkpoints[position].after.index(cycle[1])
        report.add(("checkpoints", position, "after", edge), "cycle in after: " + " -> ".join(cycle))


def find_cycles(checkpoints: Sequence[Checkpoint]) -> list[tuple[str, ...]]:
    """Cycles in the `after` graph, each named once as `a, b, c, a` (a waits on b, b on c, ...).

    Each cycle starts at its checkpoint that comes first in the plan, so the name is stable.
    At least one cycle is named for every strongly connected group; that is enough to fix it.
    Unknown names and duplicate ids are reported elsewhere and ignored here (first id wins).
    """
    order: dict[str, int] = {}
    edges: dict[str, list[str]] = {}
    for i, checkpoint in enumerate(checkpoints):
        if checkpoint.id not in order:
            order[checkpoint.id] = i
            edges[checkpoint.id] = list(dict.fromkeys(a for a in checkpoint.after))
    for node, targets in edges.items():
        edges[node] = [t for t in targets if t in order]

    done: set[str] = set()
    found: list[tuple[str, ...]] = []
    seen_cycles: set[tuple[str, ...]] = set()
    for root in edges:
        if root in done:
            continue
        # Iterative depth-first search; `trail` is the current path, `on_trail` its members.
        trail: list[str] = [root]
        on_trail: set[str] = {root}
        cursors: list[int] = [0]
        while trail:
            node = trail[-1]
            targets = edges[node]
            if cursors[-1] == len(targets):
                trail.pop()
                cursors.pop()
                on_trail.discard(node)
                done.add(node)
                continue
            target = targets[cursors[-1]]
            cursors[-1] += 1
            if target in on_trail:
                loop = trail[trail.index(target) :]
                start = min(range(len(loop)), key=lambda k: order[loop[k]])
                rotated = (*loop[start:], *loop[:start])
                if rotated not in seen_cycles:
                    seen_cycles.add(rotated)
                    found.append((*rotated, rotated[0]))
            elif target not in done:
                trail.append(target)
                on_trail.add(target)
                cursors.append(0)
    return sorted(found, key=lambda cycle: order[cycle[0]])


def _when(value: datetime) -> str:
    return value.isoformat()


def _check_windows(plan: Plan, report: _Report) -> None:
    start, end = plan.window.start, plan.window.end
    if end <= start:
        report.add(("window", "end"), f"window ends at {_when(end)}, not after it starts at {_when(start)}")
    for i, checkpoint in enumerate(plan.checkpoints):
        window = checkpoint.window
        if window is None:
            continue
        at: FieldPath = ("checkpoints", str(i), "window")
        if window.not_before is not None and window.not_after is not None:
            if window.not_after < window.not_before:
                report.add(
                    (*at, "not_after"),
                    f"not_after {_when(window.not_after)} is before not_before {_when(window.not_before)}",
                )
                continue
            room = window.not_after - window.not_before
            if room < checkpoint.planned_length:
                # It could never be scheduled: the plan would open with a conflict.
                report.add(
                    at,
                    f"window is {format_duration(room)} but the checkpoint needs "
                    f"{format_duration(checkpoint.planned_length)} (duration + soak)",
                )
        if window.not_after is not None and window.not_after <= start:
            report.add((*at, "not_after"), f"not_after {_when(window.not_after)} is before the window starts")
        if window.not_before is not None and end > start and window.not_before >= end:
            report.add((*at, "not_before"), f"not_before {_when(window.not_before)} is after the window ends")


def _check_timeline_fits_window(plan: Plan, report: _Report) -> None:
    """The planned timeline (the first packet) must end by `window.end`.

    Only the first checkpoint (by start) to overrun is named: what follows it overruns because
    of it, and the timeline is in start order, so its dependencies ended in time.
    """
    packet = build_packet(plan, Facts(), version=1, supersedes=None, reason="plan check", acting={})
    index = {checkpoint.id: i for i, checkpoint in enumerate(plan.checkpoints)}
    end = plan.window.end
    for line in packet.timeline:
        if line.end <= end:
            continue
        report.add(
            ("checkpoints", index[line.id]),
            f"checkpoint '{line.id}' is planned to end at {_when(line.end)}, "
            f"after the window ends at {_when(end)}",
        )
        return


def _percent(value: float) -> str:
    return f"{value:g}%"


def _check_traffic(plan: Plan, report: _Report) -> None:
    previous: tuple[str, float] | None = None
    for i, checkpoint in enumerate(plan.checkpoints):
        traffic = checkpoint.traffic
        if traffic is None:
            continue
        if previous is not None and traffic.percent < previous[1] and not traffic.rollback:
            report.add(
                ("checkpoints", i, "traffic", "percent"),
                f"traffic goes down from {_percent(previous[1])} ({previous[0]}) "
                f"to {_percent(traffic.percent)}; mark a planned step down with traffic.rollback: true",
            )
        previous = (checkpoint.id, traffic.percent)


def _check_gates(plan: Plan, report: _Report) -> None:
    gates = list(plan.gates)
    for name, gate in plan.gates.items():
        if _names_baseline(gate.pass_):
            _check_baseline_rule(name, gate, report)
        elif parse_pass(gate.pass_) is None:
            report.add(
                ("gates", name, "pass"),
                f"cannot read '{gate.pass_}': write OP NUMBER like '>= 0.995' "
                f"(OP: {', '.join(PASS_OPERATORS)})",
            )
        _check_gate_policy(name, gate, report)
    for i, checkpoint in enumerate(plan.checkpoints):
        _check_references(report, ("checkpoints", str(i), "gates"), checkpoint.gates, gates, "gate")
        _check_references(report, ("checkpoints", str(i), "watch"), checkpoint.watch, gates, "gate")
    _check_references(report, ("watch",), plan.watch, gates, "gate")
    if plan.hypercare is not None:
        _check_references(report, ("hypercare", "gates"), plan.hypercare.gates, gates, "gate")


def _names_baseline(rule: str) -> bool:
    return "baseline" in rule


def _check_baseline_rule(name: str, gate: Gate, report: _Report) -> None:
    try:
        GateSpec.parse(gate.pass_)
    except GateSpecError:
        report.add(
            ("gates", name, "pass"),
            f"cannot read '{gate.pass_}': write OP [Nx] baseline [+ or - N] like '<= 2x baseline' "
            f"or '<= baseline + 0.005' (OP: {', '.join(PASS_OPERATORS)})",
        )
        return
    if gate.baseline is None:
        report.add(("gates", name, "pass"), f"'{gate.pass_}' compares with a baseline: add baseline: QUERY")


def _check_gate_policy(name: str, gate: Gate, report: _Report) -> None:
    if gate.baseline is not None and not _names_baseline(gate.pass_):
        report.add(
            ("gates", name, "baseline"),
            "the pass rule does not use the baseline; write it like '<= 2x baseline'",
        )
    at = ("gates", name)
    if gate.interval is not None and gate.interval <= timedelta(0):
        report.add((*at, "interval"), "interval must be longer than 0")
    if gate.kind == "readiness":
        if gate.timeout is None or gate.timeout <= timedelta(0):
            report.add(
                (*at, "timeout") if gate.timeout is not None else (*at, "kind"),
                "a readiness gate needs a timeout longer than 0, like 30m: how long it may keep the "
                "checkpoint waiting before it takes its on_fail action",
            )
    elif gate.timeout is not None:
        report.add((*at, "timeout"), "only a readiness gate (kind: readiness) has a timeout")


def _check_adapters(plan: Plan, report: _Report) -> None:
    telemetry = plan.telemetry
    if telemetry.provider == "prometheus" and not telemetry.url:
        report.add(("telemetry", "url"), "prometheus telemetry needs a url, like http://127.0.0.1:9090")
    if telemetry.provider == "file" and not telemetry.path:
        report.add(("telemetry", "path"), "file telemetry needs a path")
    if plan.actuator.kind == "webhook" and not plan.actuator.url:
        report.add(("actuator", "url"), "a webhook actuator needs a url")


def _check_cadences(plan: Plan, report: _Report) -> None:
    # A zero interval would schedule gate checks in a tight loop.
    if plan.gate_policy.interval <= timedelta(0):
        report.add(("gate_policy", "interval"), "interval must be longer than 0")
    if plan.hypercare is None:
        return
    breach = plan.hypercare.extend_on_breach
    if breach is not None and breach <= timedelta(0):
        report.add(("hypercare", "extend_on_breach"), "extend_on_breach must be longer than 0")
    previous = timedelta(0)
    for i, step in enumerate(plan.hypercare.cadence):
        at = ("hypercare", "cadence", str(i))
        if step.every <= timedelta(0):
            report.add((*at, "every"), "every must be longer than 0")
        if step.until <= previous:
            report.add(
                (*at, "until"),
                f"until {format_duration(step.until)} must be later than the step before "
                f"({format_duration(previous)})",
            )
        previous = max(previous, step.until)


def _check_rehearsal(plan: Plan, report: _Report) -> None:
    if plan.rehearsal is None:
        return
    gates = list(plan.gates)
    for name, points in plan.rehearsal.telemetry.items():
        at = ("rehearsal", "telemetry", name)
        owner = name.removesuffix("@baseline")
        if owner != name and owner in plan.gates and plan.gates[owner].baseline is None:
            report.add(at, f"gate {owner} has no baseline: query for this series to stand in for")
        elif owner not in plan.gates:
            report.add(at, _unknown("gate", name, gates))
        latest: timedelta | None = None
        for k, (offset, _value) in enumerate(points):
            if latest is not None and offset < latest:
                report.add(
                    (*at, str(k), "0"),
                    f"offset {format_duration(offset)} comes before {format_duration(latest)}; "
                    "list values in time order",
                )
            latest = offset if latest is None else max(latest, offset)
