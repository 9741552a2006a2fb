"""The `/cutover` text grammar, shared by Slack and the rehearsal's scripted actions.

`parse(text)` returns a `Parsed` value or raises `Usage` carrying the usage line of the
subcommand the person was trying to type (or the whole help when the subcommand is unknown).
Nothing here touches the store: a typed time stays a `TimeOfDay` or a delay, resolved against the
plan window by the use case, inside the run's transaction (`packets.durations.resolve_time`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from packets.durations import DurationError, TimeOfDay, parse_duration

USAGE: dict[str, str] = {
    "help": "/cutover help",
    "status": "/cutover status",
    "packet": "/cutover packet [vN]   (default: the packet in force; any version, proposed or past)",
    "open": "/cutover open PLAN",
    "start": "/cutover start",
    "done": "/cutover done CHECKPOINT",
    "late": "/cutover late CHECKPOINT UNTIL [reason]   (UNTIL: HH:MM or +30m)",
    "window": "/cutover window CHECKPOINT HH:MM-HH:MM",
    "delegate": "/cutover delegate ROLE @user",
    "hold": "/cutover hold REASON",
    "release": "/cutover release CHECKPOINT|HOLD-ID [how it was resolved]",
    "unrelease": "/cutover unrelease CHECKPOINT|HOLD-ID   (take back your release of a two-person hold)",
    "pause": "/cutover pause [reason]",
    "resume": "/cutover resume",
    "freeze": "/cutover freeze REASON",
    "unfreeze": "/cutover unfreeze",
    "rollback": "/cutover rollback [cohort|all] REASON",
    "restore": "/cutover restore COHORT   (hyper-care: a cohort back to the plan's final percent)",
    "abort": "/cutover abort REASON",
    "signoff": "/cutover signoff [ROLE]",
    "adopt": "/cutover adopt [vN]",
    "reject": "/cutover reject [vN] [#N ...] [reason]   (#N: a reported change to drop; default the newest)",
    "ack": "/cutover ack [vN]",
    "evidence": "/cutover evidence [RUN]   (default: this channel's active run, else its latest)",
    "ledger": "/cutover ledger [RUN] [N]   (default: this channel's active run, else its latest)",
    "supersede": "/cutover supersede PLAN REASON   (a newer revision of this run's bundle)",
    "manifest": "/cutover manifest [RUN]   (a signed-off bundle's approval manifest, shared as a file)",
}
ALIASES = {"acknowledge": "ack", "sign": "signoff", "sign-off": "signoff", "?": "help"}
MAX_TEXT = 2000
_ID = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,99}$")
# Hold ids as the bot prints them: `canary-a/gate/2`, `run/manual/1`; or a checkpoint id.
_HOLD = re.compile(r"^[a-z0-9][a-z0-9._:/-]{0,149}$")
_COHORT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
_ROLE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_USER = re.compile(r"^<@([UW][A-Z0-9]{2,20})(?:\|[^>]{0,80})?>$|^@?([UW][A-Z0-9]{2,20})$")
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_VERSION = re.compile(r"^v?(\d{1,6})$")
_FACT = re.compile(r"^#\d{1,6}$")  # a pending change, as a proposal lists it


class Usage(Exception):
    """Malformed input: `line` is what to show the person (never a traceback)."""

    def __init__(self, subcommand: str | None, problem: str) -> None:
        self.subcommand = subcommand
        self.problem = problem
        usage = USAGE.get(subcommand or "", "")
        self.line = f"{problem}. Usage: {usage}" if usage else f"{problem}. Try /cutover help"
        super().__init__(self.line)


@dataclass(frozen=True, slots=True)
class Parsed:
    name: str
    checkpoint: str | None = None
    until: TimeOfDay | timedelta | None = None
    window: tuple[TimeOfDay, TimeOfDay] | None = None
    role: str | None = None
    user: str | None = None
    reason: str = ""
    scope: str | None = None
    version: int | None = None
    count: int | None = None
    plan: str | None = None
    run: str | None = None  # a run named outright (evidence, ledger, manifest: ended runs too)
    facts: tuple[int, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)


def parse(text: str) -> Parsed:
    """Parse the text after `/cutover`. Raises `Usage` for anything malformed."""
    if len(text) > MAX_TEXT:
        raise Usage(None, f"That command is {len(text)} characters; the limit is {MAX_TEXT}")
    words = text.split()
    if not words:
        return Parsed(name="help")
    head = words[0].lower()
    name = ALIASES.get(head, head)
    rest = words[1:]
    if name not in USAGE:
        raise Usage(None, f"Unknown subcommand {_shown(words[0])}")
    parser = _PARSERS.get(name, _no_args)
    return parser(name, rest)


def _shown(word: str) -> str:
    clean = "".join(ch for ch in word[:40] if ch.isprintable() and ch not in "`<>*_~")
    return f"'{clean}'"


def _no_args(name: str, rest: list[str]) -> Parsed:
    if rest:
        raise Usage(name, f"'{name}' takes no arguments")
    return Parsed(name=name)


def _checkpoint(name: str, word: str | None) -> str:
    if word is None:
        raise Usage(name, "Which checkpoint?")
    if not _ID.match(word.lower()):
        raise Usage(name, f"{_shown(word)} is not a checkpoint id")
    return word.lower()


def _reason(name: str, rest: list[str], *, required: bool) -> str:
    reason = " ".join(rest).strip()
    if required and not reason:
        raise Usage(name, "A reason is required")
    return reason


def _parse_open(name: str, rest: list[str]) -> Parsed:
    if len(rest) != 1 or not _ID.match(rest[0].lower()) or ":" in rest[0]:
        raise Usage(name, "Name one plan from the plans directory")
    return Parsed(name=name, plan=rest[0].lower())


def _parse_done(name: str, rest: list[str]) -> Parsed:
    if len(rest) != 1:
        raise Usage(name, "Name exactly one checkpoint")
    return Parsed(name=name, checkpoint=_checkpoint(name, rest[0]))


def _parse_release(name: str, rest: list[str]) -> Parsed:
    if not rest:
        raise Usage(name, "Name the checkpoint or hold to release")
    if not _HOLD.match(rest[0].lower()):
        raise Usage(name, f"{_shown(rest[0])} is not a checkpoint or hold id")
    return Parsed(name=name, checkpoint=rest[0].lower(), reason=_reason(name, rest[1:], required=False))


def _parse_unrelease(name: str, rest: list[str]) -> Parsed:
    if len(rest) != 1 or not _HOLD.match(rest[0].lower()):
        raise Usage(name, "Name the one checkpoint or hold whose release you take back")
    return Parsed(name=name, checkpoint=rest[0].lower())


def _parse_supersede(name: str, rest: list[str]) -> Parsed:
    if not rest or not _ID.match(rest[0].lower()) or ":" in rest[0]:
        raise Usage(name, "Name the plan of the newer revision, then why")
    return Parsed(name=name, plan=rest[0].lower(), reason=_reason(name, rest[1:], required=True))


def _parse_until(name: str, word: str) -> TimeOfDay | timedelta:
    match = _HHMM.match(word)
    if match:
        return TimeOfDay(int(match.group(1)), int(match.group(2)))
    if word.startswith("+"):
        try:
            delta = parse_duration(word[1:])
        except DurationError:
            pass
        else:
            if timedelta(0) < delta <= timedelta(days=2):
                return delta
    raise Usage(name, f"UNTIL must be HH:MM or +30m, not {_shown(word)}")


def _parse_late(name: str, rest: list[str]) -> Parsed:
    if len(rest) < 2:
        raise Usage(name, "Name the checkpoint and when it will be done")
    return Parsed(
        name=name,
        checkpoint=_checkpoint(name, rest[0]),
        until=_parse_until(name, rest[1]),
        reason=_reason(name, rest[2:], required=False),
    )


def _parse_window(name: str, rest: list[str]) -> Parsed:
    if len(rest) != 2 or rest[1].count("-") != 1:
        raise Usage(name, "Name the checkpoint and the new window")
    first, second = rest[1].split("-")
    a, b = _HHMM.match(first), _HHMM.match(second)
    if not a or not b:
        raise Usage(name, f"The window must look like 22:00-22:45, not {_shown(rest[1])}")
    start = TimeOfDay(int(a.group(1)), int(a.group(2)))
    end = TimeOfDay(int(b.group(1)), int(b.group(2)))
    return Parsed(name=name, checkpoint=_checkpoint(name, rest[0]), window=(start, end))


def _parse_delegate(name: str, rest: list[str]) -> Parsed:
    if len(rest) != 2:
        raise Usage(name, "Name the role and the user")
    role = rest[0].lower()
    if not _ROLE.match(role):
        raise Usage(name, f"{_shown(rest[0])} is not a role name")
    match = _USER.match(rest[1])
    if not match:
        raise Usage(name, f"{_shown(rest[1])} is not a user mention")
    return Parsed(name=name, role=role, user=match.group(1) or match.group(2))


def _parse_hold(name: str, rest: list[str]) -> Parsed:
    return Parsed(name=name, reason=_reason(name, rest, required=True))


def _parse_optional_reason(name: str, rest: list[str]) -> Parsed:
    return Parsed(name=name, reason=_reason(name, rest, required=False))


def _parse_rollback(name: str, rest: list[str]) -> Parsed:
    scope = "cohort"
    if rest and rest[0].lower() in ("cohort", "all"):
        scope = rest[0].lower()
        rest = rest[1:]
    return Parsed(name=name, scope=scope, reason=_reason(name, rest, required=True))


def _parse_restore(name: str, rest: list[str]) -> Parsed:
    if len(rest) != 1 or not _COHORT.match(rest[0]):
        raise Usage(name, "Name exactly one cohort")
    return Parsed(name=name, extra={"cohort": rest[0]})


def _version(name: str, rest: list[str]) -> int | None:
    if not rest:
        return None
    match = _VERSION.match(rest[0].lower())
    if not match:
        raise Usage(name, f"{_shown(rest[0])} is not a packet version like v3")
    return int(match.group(1))


def _parse_versioned(name: str, rest: list[str]) -> Parsed:
    if len(rest) > 1:
        raise Usage(name, "At most one packet version")
    return Parsed(name=name, version=_version(name, rest))


def _parse_reject(name: str, rest: list[str]) -> Parsed:
    version = None
    if rest and _VERSION.match(rest[0].lower()):
        version = _version(name, rest[:1])
        rest = rest[1:]
    facts: list[int] = []
    while rest and _FACT.match(rest[0]):
        facts.append(int(rest[0][1:]))
        rest = rest[1:]
    return Parsed(name=name, version=version, facts=tuple(facts), reason=_reason(name, rest, required=False))


def _parse_signoff(name: str, rest: list[str]) -> Parsed:
    if len(rest) > 1 or (rest and not _ROLE.match(rest[0].lower())):
        raise Usage(name, "At most one role")
    return Parsed(name=name, role=rest[0].lower() if rest else None)


def _parse_ledger(name: str, rest: list[str]) -> Parsed:
    # [RUN] [N]: a first word that is not a number names the run.
    run = _run_id(name, rest[0]) if rest and not _is_number(rest[0]) else None
    numbers = rest[1:] if run is not None else rest
    if not numbers:
        return Parsed(name=name, count=10, run=run)
    if len(numbers) == 1 and _is_number(numbers[0]) and 0 < int(numbers[0]) <= 100:
        return Parsed(name=name, count=int(numbers[0]), run=run)
    raise Usage(name, "N must be a number from 1 to 100")


def _is_number(word: str) -> bool:
    return word.isascii() and word.isdigit()


def _parse_record(name: str, rest: list[str]) -> Parsed:
    if len(rest) > 1:
        raise Usage(name, "At most one run id")
    return Parsed(name=name, run=_run_id(name, rest[0]) if rest else None)


def _run_id(name: str, word: str) -> str:
    if not _ID.match(word):
        raise Usage(name, f"{_shown(word)} is not a run id")
    return word


_PARSERS = {
    "open": _parse_open,
    "done": _parse_done,
    "late": _parse_late,
    "window": _parse_window,
    "delegate": _parse_delegate,
    "hold": _parse_hold,
    "release": _parse_release,
    "unrelease": _parse_unrelease,
    "pause": _parse_optional_reason,
    "freeze": _parse_hold,
    "abort": _parse_hold,
    "rollback": _parse_rollback,
    "restore": _parse_restore,
    "signoff": _parse_signoff,
    "adopt": _parse_versioned,
    "ack": _parse_versioned,
    "reject": _parse_reject,
    "ledger": _parse_ledger,
    "packet": _parse_versioned,
    "evidence": _parse_record,
    "manifest": _parse_record,
    "supersede": _parse_supersede,
}
