"""`cutover-bot plan check FILE`: is this plan file fit to be signed off, and what will it do?

A refused plan prints one line per problem, `FILE:LINE: field.path: what is wrong`, on stderr
and exits 2, whatever the file holds (never a traceback). An accepted plan prints its id, title,
revision (what people sign off) and the timeline version 1 would have: each checkpoint with its
owner role and acting user (the role's primary, since nobody has handed over yet), planned start
and end, whether it is protected and what holds it.

Exit status: 0 accepted, 2 unreadable or refused.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, tzinfo
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from packets.packet import Packet, PacketHold
from packets.plan import Plan, PlanInvalid
from packets.plan_load import load_plan
from packets.timeline import Facts, build_packet

EXIT_OK = 0
EXIT_REFUSED = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plan = subparsers.add_parser("plan", help="work with plan files")
    actions = plan.add_subparsers(dest="plan_action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="validate a plan file and show its revision and timeline",
        description="Validate a plan file; print its revision and the resolved timeline.",
    )
    check.add_argument("file", metavar="FILE", help="the plan YAML file")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    source: str = args.file
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{source}: cannot read: {_why(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        plan = load_plan(text, source=source)
    except PlanInvalid as invalid:
        for line in invalid.lines():
            print(line, file=sys.stderr)
        return EXIT_REFUSED
    # Piped or captured output gets a wide fixed width so rows never wrap mid-cell.
    width = None if sys.stdout.isatty() else 200
    show(plan, Console(file=sys.stdout, width=width, markup=False, emoji=False, highlight=False))
    return EXIT_OK


def _why(exc: OSError | UnicodeDecodeError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    return exc.strerror or str(exc)


def show(plan: Plan, console: Console) -> None:
    """Print the accepted plan: identity, revision, then version 1 of its timeline."""
    packet = first_packet(plan)
    tz = plan.window.start.tzinfo
    # Plan text is printed as Text, never parsed as rich markup: a title may contain brackets.
    console.print(Text(f"plan: {plan.plan}"))
    console.print(Text(f"title: {plan.title}"))
    if plan.change_record:
        console.print(Text(f"change record: {plan.change_record}"))
    console.print(Text(f"revision: {plan.revision}"))
    window = f"{plan.window.start.isoformat()} to {plan.window.end.isoformat()}"
    console.print(Text(f"window: {window}, channel {plan.channel}"))
    holds: dict[str, list[PacketHold]] = {}
    for hold in packet.holds:
        holds.setdefault(hold.checkpoint, []).append(hold)
    table = Table(title=f"timeline (packet v{packet.version})", title_justify="left")
    for column in ("checkpoint", "owner", "acting", "start", "end", "protected", "hold"):
        table.add_column(column, no_wrap=column != "hold")
    day = plan.window.start.date()
    for row in packet.timeline:
        table.add_row(
            row.id,
            row.owner_role,
            row.owner_user,
            _clock(row.start, tz, day),
            _clock(row.end, tz, day),
            "yes" if row.protected else "",
            "; ".join(_hold_text(h) for h in holds.get(row.id, [])),
        )
    console.print(table)
    for row in packet.conflicts:
        console.print(f"conflict: {row.id} {row.conflict}")


def first_packet(plan: Plan) -> Packet:
    """Version 1 as the run would start it: no facts yet, every role's primary acting."""
    return build_packet(
        plan,
        Facts(),
        version=1,
        supersedes=None,
        reason="plan check",
        acting={name: role.primary for name, role in plan.roles.items()},
    )


def _clock(value: datetime, tz: tzinfo | None, day: date) -> str:
    local = value.astimezone(tz)
    text = local.strftime("%H:%M")
    return text if local.date() == day else f"{text} ({local:%m-%d})"


def _hold_text(hold: PacketHold) -> str:
    roles = ", ".join(hold.release_by)
    mode = " (all)" if hold.mode == "all" and len(hold.release_by) > 1 else ""
    return f"{hold.source}: {roles}{mode}"
