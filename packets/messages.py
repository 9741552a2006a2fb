"""The messages the bot sends people: one kind per template, one typed payload per kind.

`MessageKind` is the only vocabulary of message kinds in the project: its values are the names of
the Jinja2 templates in bot/templates/ (`<kind>.j2`), the outbox stores them with each row, and
the renderer picks the template by them. It lives in packets/ because the engine and the handlers
both name messages, and packets/ is the lowest layer that does.

Each kind has one frozen payload class below; `as_json()` gives the plain JSON the template reads
(the template's header comment lists the same fields). The run id is not a field: the one route
into the outbox (`handlers.outbox.post`) adds it, so a payload cannot name another run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, ClassVar


class MessageKind(StrEnum):
    """One template per kind (bot/templates/<kind>.j2); the outbox stores the kind with its payload."""

    PLAN_SUMMARY = "plan_summary"  # channel: the plan opened, its revision, one Sign-off button per role
    SIGNOFF_RECORDED = "signoff_recorded"  # channel line: who signed which revision as which role
    PACKET_POSTED = "packet_posted"  # channel: the full packet card (proposed or authoritative)
    PACKET_SUPERSEDED = "packet_superseded"  # update in place: "superseded by vN", no buttons
    PACKET_PROPOSED_LINE = "packet_proposed_line"  # channel line: "v3 proposed: 4 checkpoints moved, 1 held"
    DELTA_DM = "delta_dm"  # DM: only this person's changes, with Acknowledge
    HOLD_OPENED = "hold_opened"  # channel: a hold, who may release it, with Release
    HOLD_RELEASED = "hold_released"  # channel line: who released, as which role, on behalf of whom
    GATE_ALERT = "gate_alert"  # channel: gate, value, threshold, the action taken
    TRAFFIC_SHIFT = "traffic_shift"  # channel line: cohort moved to N% (or refused by the control plane)
    RUN_STATE = "run_state"  # channel line: started, paused, frozen, rolled back, completed ...
    ROLLBACK_REQUESTED = "rollback_requested"  # channel: a typed rollback asks the room to Confirm
    EVIDENCE = "evidence"  # channel: the evidence packet was exported, its ledger check
    EVIDENCE_FILE = "evidence_file"  # channel: the evidence packet itself, uploaded as a Markdown file
    MANIFEST_FILE = "manifest_file"  # channel: a bundle's approval manifest, uploaded as a JSON file
    REFUSAL = "refusal_ephemeral"  # ephemeral: why an action was refused, and the current version
    REPLY = "reply"  # ephemeral: a plain answer to a command (mrkdwn text)
    STATUS = "status"  # ephemeral: the run at a glance
    HELP = "help"  # ephemeral: every subcommand's usage line
    USAGE = "usage"  # ephemeral: what was wrong with the typed command, and its usage line
    HOME_VIEW = "home_view"  # App Home: what I own, must acknowledge, may release
    LEDGER_HEAD = "ledger_head"  # thread reply: the ledger's head as message metadata (the witness)


# A field marked with this is left out of the JSON when it is None: the template tells "absent"
# (e.g. no `by` for a hold the engine opened) from "null" (e.g. no `on_behalf_of`).
_OMIT_NONE = {"omit_none": True}


def _optional() -> Any:
    return field(default=None, metadata=_OMIT_NONE)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Payload:
    kind: ClassVar[MessageKind]

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSummary(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.PLAN_SUMMARY
    plan: str
    title: str
    revision: str
    change_record: str | None
    window: dict[str, str]
    checkpoints: int
    signoffs: tuple[dict[str, Any], ...]
    # Set on the copies that update the posted summary in place (`handlers.run_card`).
    target_key: str | None = _optional()
    # The run now, on those copies: its state in words and one mrkdwn line per fact.
    state: str | None = _optional()
    live: tuple[str, ...] | None = _optional()


@dataclass(frozen=True, slots=True, kw_only=True)
class SignoffRecorded(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.SIGNOFF_RECORDED
    revision: str
    role: str
    by: str
    remaining: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PacketPosted(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.PACKET_POSTED
    packet: dict[str, Any]
    summary: str | None = _optional()
    # The run's opened holds (`run_holds`): the card binds a Release button to the one open for a
    # register entry, and marks an entry whose hold was released.
    run_holds: tuple[dict[str, Any], ...] | None = _optional()
    # packets.forecast.Forecast.as_json(): planned / actual / forecast per checkpoint, when known.
    forecast: dict[str, Any] | None = _optional()  # noqa: RUF009 (a field(), not a shared dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class PacketSuperseded(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.PACKET_SUPERSEDED
    version: int
    superseded_by: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PacketProposedLine(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.PACKET_PROPOSED_LINE
    version: int
    counts: dict[str, int]
    reason: str
    by: str
    summary: str
    # The pending changes it carries, one sentence each (`#3 canary late until 22:10, ...`).
    facts: tuple[str, ...] | None = _optional()
    # Its diff against the authoritative packet, one row per kind of change (as a DM's), so the
    # release authority reads what it adopts before adopting it.
    changes: tuple[dict[str, Any], ...] = ()
    # Once answered: {state: adopted | rejected | replaced, by, at (ISO), detail}; no buttons then.
    outcome: dict[str, Any] | None = _optional()  # noqa: RUF009 (a field(), not a shared dict)
    target_key: str | None = _optional()


@dataclass(frozen=True, slots=True, kw_only=True)
class DeltaDm(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.DELTA_DM
    version: int
    from_version: int
    channel: str
    reason: str
    changes: tuple[dict[str, Any], ...]
    # Once answered: {state: acknowledged | outdated, by, at (ISO), detail}; no button then.
    outcome: dict[str, Any] | None = _optional()  # noqa: RUF009 (a field(), not a shared dict)
    target_key: str | None = _optional()


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldOpened(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.HOLD_OPENED
    version: int
    hold: dict[str, Any]
    by: str | None = _optional()


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldReleased(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.HOLD_RELEASED
    hold: dict[str, Any]
    by: Any
    as_role: Any
    on_behalf_of: str | None
    remaining: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class GateAlert(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.GATE_ALERT
    checkpoint: Any
    gate: Any
    value: Any
    outcome: str
    reason: Any
    action: Any
    taken: Any
    threshold: str
    at: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TrafficShift(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.TRAFFIC_SHIFT
    checkpoint: str | None
    cohort: str
    percent: float
    previous_percent: float
    ok: bool
    detail: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStateLine(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.RUN_STATE
    state: str
    reason: str
    by: str | None = _optional()

    @classmethod
    def line(cls, state: str, details: Mapping[str, Any]) -> RunStateLine:
        """`state`, with `details` told as one line of phrases a person reads: which checkpoint,
        which cohort at what percent, why, what is still needed. Bookkeeping (a soak's end as a UTC
        instant, a shift's cause) stays in the ledger: the card and status tell times in the
        reader's zone.

        `by` is named only when it is a person (a user id), not the engine or a gate.
        """
        reason = "; ".join(_phrases(details))
        by = details.get("by")
        person = by if isinstance(by, str) and by.startswith(("U", "W")) else None
        return cls(state=state, reason=reason, by=person)


def _phrases(details: Mapping[str, Any]) -> list[str]:
    def given(key: str) -> Any:
        value = details.get(key)
        return None if value in (None, "") else value

    phrases: list[str] = []
    checkpoint, title = given("checkpoint"), given("title")
    if title and checkpoint:
        phrases.append(f"{title} ({checkpoint})")
    elif checkpoint:
        phrases.append(f"checkpoint {checkpoint}")
    if given("cohort") is not None:
        percent = given("percent")
        at = f" at {percent:g}%" if isinstance(percent, int | float) else ""
        phrases.append(f"cohort {details['cohort']}{at}")
    phrases += [str(details[k]) for k in ("reason", "why", "detail") if given(k)]
    if given("needs"):
        phrases.append(f"still needs {details['needs']}")
    if given("gates"):
        phrases.append(f"watching {details['gates']}")
    if given("cadence"):
        phrases.append(f"checks {details['cadence']}")
    done = given("checkpoints_done")
    if isinstance(done, int):
        phrases.append(f"{done} checkpoint{'' if done == 1 else 's'} done")
    if given("packet_version") is not None:
        phrases.append(f"on packet v{details['packet_version']}")
    attempt = given("attempt")
    if isinstance(attempt, int) and attempt > 1:
        phrases.append(f"attempt {attempt}")
    return phrases


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackRequested(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.ROLLBACK_REQUESTED
    version: int | None
    scope: str  # "cohort" | "all"
    reason: str
    # What the Confirm button carries back: the rollback request's id.
    rollback: str
    by: str | None = _optional()
    # What would move: [{cohort, before, after}] (percentages).
    changes: tuple[dict[str, Any], ...] = ()
    # Once answered: {state: confirmed | outdated | refused, by, at (ISO), detail}; no button then.
    outcome: dict[str, Any] | None = _optional()  # noqa: RUF009 (a field(), not a shared dict)
    # The dedupe key of the question's own message, which an answered copy updates in place.
    target_key: str | None = _optional()


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.EVIDENCE
    state: str
    ledger_ok: bool
    ledger_head: str | None
    problem: str | None
    counts: dict[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceFile(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.EVIDENCE_FILE
    filename: str
    title: str
    content: str  # the evidence in Markdown, redacted as the export is


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestFile(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.MANIFEST_FILE
    filename: str
    title: str
    content: str  # the manifest JSON, exactly as `cutover-bot manifest RUN` prints it
    hash: str
    revision: str
    queue: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.REFUSAL
    reason: str
    current_version: int | None
    channel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.REPLY
    text: str
    channel: str | None = _optional()


@dataclass(frozen=True, slots=True, kw_only=True)
class Status(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.STATUS
    state: str
    version: int
    next: dict[str, Any] | None
    open_holds: tuple[dict[str, Any], ...]
    gates: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Help(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.HELP
    usage: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.USAGE
    problem: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HomeView(_Payload):
    kind: ClassVar[MessageKind] = MessageKind.HOME_VIEW
    user: str
    runs: tuple[dict[str, Any], ...]
    owned: tuple[dict[str, Any], ...]
    to_ack: tuple[dict[str, Any], ...]
    to_release: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerHead(_Payload):
    """The run's chain head, posted in the run's thread: Slack keeps it as message metadata
    where a database writer cannot change it (`packets.witness`)."""

    kind: ClassVar[MessageKind] = MessageKind.LEDGER_HEAD
    seq: int
    hash: str


Message = (
    PlanSummary
    | SignoffRecorded
    | PacketPosted
    | PacketSuperseded
    | PacketProposedLine
    | DeltaDm
    | HoldOpened
    | HoldReleased
    | GateAlert
    | TrafficShift
    | RunStateLine
    | RollbackRequested
    | Evidence
    | EvidenceFile
    | ManifestFile
    | Refusal
    | Reply
    | Status
    | Help
    | Usage
    | HomeView
    | LedgerHead
)

PAYLOADS: dict[MessageKind, type[Message]] = {
    cls.kind: cls
    for cls in (
        PlanSummary,
        SignoffRecorded,
        PacketPosted,
        PacketSuperseded,
        PacketProposedLine,
        DeltaDm,
        HoldOpened,
        HoldReleased,
        GateAlert,
        TrafficShift,
        RunStateLine,
        RollbackRequested,
        Evidence,
        EvidenceFile,
        ManifestFile,
        Refusal,
        Reply,
        Status,
        Help,
        Usage,
        HomeView,
        LedgerHead,
    )
}
