"""The evidence packet of a run: what was approved, what was followed, who released what, as which role.

Built only from the store (ledger, packets, sign-offs, gate results, holds as the engine recorded
them), redacted as a whole, and ending with the ledger head hash and the chain check, so an
auditor can tie every line back to a hash-chained entry.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from handlers.commands import ExportEvidence
from handlers.context import RunContext, load
from handlers.deps import Deps
from handlers.flow import on_run
from handlers.outbox import post
from handlers.outcome import Outcome
from packets import messages as msg
from packets.authority import Refused
from packets.chain import entry_body
from packets.engine import hypercare
from packets.forecast import actuals
from packets.gates import GateSpec
from packets.plan import HYPERCARE_CHECKPOINT
from packets.redact import redact_data

_ROLLBACK_KINDS = {"rollback_cohort", "global_rollback", "run_rolled_back", "rollback_retried"}


async def build_evidence(run: str, deps: Deps) -> dict[str, Any] | None:
    async with deps.uow.transaction(read_only=True) as tx:
        ctx = await load(tx, run, deps.clock.now())
        if ctx is None:
            return None
        packets = await tx.packets.for_run(run)
        entries = await tx.ledger.entries(run)
        gate_rows = await tx.gate_results.for_run(run)
        verdict = await tx.ledger.verify(run)
        head = await tx.ledger.head(run)
    adoptions = {
        e.payload.get("version"): e for e in entries if e.kind in ("packet_adopted", "packet_authoritative")
    }
    progress = ctx.progress

    def telemetry_at(at: Any) -> list[dict[str, Any]]:
        """What the releaser could see: every gate's latest reading in the run up to `at` (a plan
        hold such as `widen` has no gates of its own; the stage before it does)."""
        latest: dict[str, Any] = {}
        for row in gate_rows:
            if row.at <= at:
                latest[row.gate] = {
                    "gate": row.gate,
                    "checkpoint": row.checkpoint,
                    "value": row.value,
                    "outcome": row.outcome,
                    "at": _local(ctx, row.at),
                }
        return sorted(latest.values(), key=lambda r: r["gate"])

    # Supersession links both ways: this run's opening names the run it replaced, its end the run
    # that replaced it.
    opened: dict[str, Any] = next((e.payload for e in entries if e.kind == "run_opened"), {})
    ended: dict[str, Any] = next((e.payload for e in entries if e.kind == "run_superseded"), {})
    evidence = {
        "run": run,
        "supersedes": opened.get("supersedes"),
        "superseded_by": ended.get("superseded_by"),
        "plan": {
            "id": ctx.plan.plan,
            "title": ctx.plan.title,
            "revision": ctx.plan.revision,
            "change_record": ctx.plan.change_record,
            "channel": ctx.plan.channel,
            "window": {"start": ctx.plan.window.start.isoformat(), "end": ctx.plan.window.end.isoformat()},
        },
        "signoffs": [
            # This run's sign-offs, as the engine accepted them: the store keeps sign-offs per
            # revision, and an earlier run of the same revision must not be credited here.
            {"role": s.role, "user": s.user, "revision": s.revision, "at": _local(ctx, s.at)}
            for s in ctx.progress.signoffs.values()
        ],
        "packets": [
            {
                "version": p.version,
                "state": p.state,
                "reason": p.reason,
                "hash": p.hash,
                "supersedes": p.supersedes,
                "adopted": (
                    {
                        "by": adoptions[p.version].actor,
                        "at": _local(ctx, adoptions[p.version].at),
                        "role": adoptions[p.version].payload.get("role"),
                    }
                    if p.version in adoptions
                    else None
                ),
            }
            for p in packets
        ],
        # Planned (the authoritative packet) against actual (the engine and people's facts), per
        # checkpoint in the packet's order; times in the plan window's offset, null while unknown.
        "timeline": _planned_vs_actual(ctx),
        "readiness": [
            {
                "checkpoint": cid,
                "state": str(cp.state),
                "done_at": _local(ctx, cp.done_at),
                "done_by": list(cp.done_by),
                "gate_results": {g: [r.as_json() for r in rs] for g, rs in cp.evidence.items()},
            }
            for cid, cp in progress.checkpoints.items()
            if cp.state == "done"
        ],
        "holds": [
            {
                "id": h.id,
                "checkpoint": h.checkpoint,
                "reason": h.reason,
                "source": str(h.source),
                "release_by": list(h.release_by),
                "mode": h.mode,
                "opened_at": _local(ctx, h.opened_at),
                "opened_by": h.opened_by,
                "state": str(h.state),
                "released_at": _local(ctx, h.released_at),
                "releases": [
                    {
                        "user": r.user,
                        "role": r.role,
                        "on_behalf_of": r.acting_for,
                        "at": _local(ctx, r.at),
                        "telemetry": telemetry_at(r.at),
                    }
                    for r in h.releases
                ],
            }
            for h in progress.holds.values()
        ],
        "traffic": [
            {"cohort": cohort, **change.as_json()}
            for cohort, changes in progress.traffic_history.items()
            for change in changes
        ],
        "rollbacks": [
            {
                "seq": e.seq,
                "kind": e.kind,
                "actor": e.actor,
                "at": _local(ctx, e.at),
                "payload": e.payload,
            }
            for e in entries
            if e.kind in _ROLLBACK_KINDS
        ],
        "refusals": [
            {"seq": e.seq, "actor": e.actor, "at": _local(ctx, e.at), **e.payload}
            for e in entries
            if e.kind == "refused"
        ],
        "hypercare": _hypercare(ctx, entries, gate_rows),
        # Every consequential step in one timeline, in the plan's offset: freezes, pauses, gate
        # failures whether or not they opened a hold, rejections, delegate switches, aborts...
        "steps": _steps(ctx, entries),
        # Per stage, how long it stood held and frozen: a bad night never reads green.
        "stages": _stages(ctx, entries, gate_rows),
        "final_state": str(progress.state),
        "final_state_words": progress.state.words,
        # What the plan covered and what would undo it: the cutover decision record's scope and
        # rollback criteria (handlers/decision_record.py).
        "scope": _scope(ctx),
        "rollback_criteria": _rollback_criteria(ctx),
        # Per cohort, the traffic the run left on the new service.
        "final_traffic": dict(sorted(progress.traffic.items())),
        "ledger": {
            "entries": verdict.entries,
            "verified": verdict.ok,
            "problem": verdict.problem,
            "head": head.hash if head else None,
        },
    }
    exported = dict(redact_data(evidence))
    # The entries exactly as hashed, outside the export's redaction: they were redacted when they
    # were written, and redacting them again could change a byte and break the offline check.
    exported["ledger"]["chain"] = [
        {
            **entry_body(seq=e.seq, at=e.at, run_id=e.run_id, actor=e.actor, kind=e.kind, payload=e.payload),
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        }
        for e in entries
    ]
    return exported


def _hypercare(ctx: Any, entries: list[Any], gate_rows: list[Any]) -> dict[str, Any] | None:
    """Hyper-care as it happened: when, how many checks, every failure and the action it took."""
    since, care = ctx.progress.hypercare_since, ctx.plan.hypercare
    if since is None or care is None:
        return None
    rows = [r for r in gate_rows if r.checkpoint == HYPERCARE_CHECKPOINT]
    found: dict[str, Any] = {
        "since": _local(ctx, since),
        "until": _local(ctx, hypercare.until(ctx.plan, ctx.progress) or since + care.length),
        "gates": list(ctx.plan.hypercare_gates()),
        "checks": len(rows),
        "failed_checks": sum(1 for r in rows if r.outcome != "pass"),
        "failures": [
            {
                "seq": e.seq,
                "at": _local(ctx, e.at),
                "actor": e.actor,
                "action": e.payload.get("action"),
            }
            for e in entries
            if e.kind == "gate_failed" and e.payload.get("checkpoint") == HYPERCARE_CHECKPOINT
        ],
        "ended": next((_local(ctx, e.at) for e in entries if e.kind == "hypercare_ended"), None),
    }
    extended = [
        {
            "seq": e.seq,
            "at": _local(ctx, e.at),
            "gate": e.payload.get("gate"),
            "until": e.payload.get("until"),
        }
        for e in entries
        if e.kind == "hypercare_extended"
    ]
    if extended:
        found["extended"] = extended  # each breach that made hyper-care go on longer
    return found


def _authoritative(evidence: dict[str, Any]) -> str:
    found = [p["version"] for p in evidence["packets"] if p["state"] == "authoritative"]
    return str(found[-1]) if found else "?"


# Entries that are not steps of the night: refusals have their own list, the rest is bookkeeping.
_NOT_STEPS = {"refused", "log", "gate_results_ignored", "actuation_report_ignored"}


def _steps(ctx: RunContext, entries: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "seq": e.seq,
            "at": _local(ctx, e.at),
            "kind": e.kind,
            "by": e.actor,
            "payload": e.payload,
        }
        for e in entries
        if e.kind not in _NOT_STEPS
    ]


def _local(ctx: RunContext, at: datetime | None) -> str | None:
    """`at` in ISO 8601 with the plan window's offset: every time in the evidence is told in it."""
    return at.astimezone(ctx.plan.window.start.tzinfo).isoformat() if at is not None else None


def _overlap(start: datetime, end: datetime, spans: list[tuple[datetime, datetime]]) -> float:
    return sum(max(0.0, (min(end, b) - max(start, a)).total_seconds()) for a, b in spans)


def _spans(entries: list[Any], opens: str, closes: str, end: datetime) -> list[tuple[datetime, datetime]]:
    """The spans between each `opens` entry and the `closes` after it (still open: until `end`)."""
    spans: list[tuple[datetime, datetime]] = []
    since = None
    for e in entries:
        if e.kind == opens and since is None:
            since = e.at
        elif e.kind == closes and since is not None:
            spans.append((since, e.at))
            since = None
    if since is not None:
        spans.append((since, end))
    return spans


def _stages(ctx: RunContext, entries: list[Any], gate_rows: list[Any]) -> list[dict[str, Any]]:
    """Per checkpoint of the authoritative packet: seconds held (its holds open), frozen and paused
    (the run frozen or paused while the checkpoint was under way, or waiting on a hold of its own),
    and per gate its checks, failures, no-data readings and worst reading."""
    end = max([ctx.now, *(e.at for e in entries)])
    frozen = _spans(entries, "run_frozen", "run_unfrozen", end)
    paused = _spans(entries, "run_paused", "run_resumed", end)
    known = actuals(ctx.progress, ctx.facts)
    out = []
    for line in ctx.packet.timeline:
        holds = [h for h in ctx.progress.holds.values() if h.checkpoint == line.id]
        held = [(h.opened_at, h.released_at or end) for h in holds]
        actual = known.get(line.id)
        spans = list(held)
        if actual is not None and actual.started_at is not None:
            spans.append((actual.started_at, actual.ended_at or end))
        first = min((a for a, _ in spans), default=None)
        last = max((b for _, b in spans), default=None)
        under_way = (first, last) if first is not None and last is not None else None
        out.append(
            {
                "checkpoint": line.id,
                "time_held_seconds": round(sum((b - a).total_seconds() for a, b in held)),
                "time_frozen_seconds": _within(under_way, frozen),
                "time_paused_seconds": _within(under_way, paused),
                "gates": _gate_summary(ctx, [r for r in gate_rows if r.checkpoint == line.id]),
            }
        )
    return out


def _within(under_way: tuple[datetime, datetime] | None, spans: list[tuple[datetime, datetime]]) -> int:
    return round(_overlap(*under_way, spans)) if under_way is not None else 0


def _gate_summary(ctx: RunContext, rows: list[Any]) -> list[dict[str, Any]]:
    out = []
    for gate in sorted({r.gate for r in rows}):
        mine = [r for r in rows if r.gate == gate]
        spec = ctx.plan.gates.get(gate)
        values = [r.value for r in mine if r.value is not None]
        out.append(
            {
                "gate": gate,
                "rule": spec.pass_ if spec is not None else None,
                "checks": len(mine),
                "failed": sum(1 for r in mine if r.outcome == "fail"),
                "no_data": sum(1 for r in mine if r.outcome == "no-data"),
                "worst": GateSpec.parse(spec.pass_).worst(values) if spec is not None else None,
            }
        )
    return out


_STEP_SENTENCES = {
    "run_frozen": "{by} froze the run: {reason}",
    "run_unfrozen": "{by} unfroze the run",
    "run_paused": "{by} paused the run: {reason}",
    "run_resumed": "{by} resumed the run",
    "run_aborted": "{by} aborted the run: {why}",
    "packet_rejected": "{by} rejected packet v{version}: {reason}",
    "acting_changed": "{by} handed {role} from {from} to {to}",
}


def _step_sentence(step: dict[str, Any]) -> str:
    payload = step["payload"] if isinstance(step["payload"], dict) else {}
    template = _STEP_SENTENCES.get(step["kind"])
    if template is None:
        return f"{step['kind'].replace('_', ' ')} ({step['by']})"
    values = {
        "reason": "no reason given",
        "why": "no reason given",
        "version": "?",
        "role": "?",
        "from": "?",
        "to": "?",
        **payload,
    }
    return template.format(by=step["by"], **{k: v for k, v in values.items() if k != "by"})


def _scope(ctx: RunContext) -> list[dict[str, Any]]:
    return [
        {
            "checkpoint": cp.id,
            "title": cp.title,
            "owner": cp.owner,
            "cohort": cp.traffic.cohort if cp.traffic else None,
            "percent": cp.traffic.percent if cp.traffic else None,
            "gates": list(cp.gates),
            "protected": cp.protected,
            "not_after": _local(ctx, cp.window.not_after if cp.window is not None else None),
            "hold": (
                {"release_by": list(cp.hold.release_by), "mode": cp.hold.mode}
                if cp.hold is not None
                else None
            ),
        }
        for cp in ctx.plan.checkpoints
    ]


def _rollback_criteria(ctx: RunContext) -> list[dict[str, Any]]:
    out = []
    for name, gate in sorted(ctx.plan.gates.items()):
        policy = ctx.plan.gate_policy_of(name)
        out.append(
            {
                "gate": name,
                "rule": gate.pass_,
                "on_fail": gate.on_fail,
                "no_data": policy.no_data,
                "description": gate.description,
            }
        )
    return out


def _planned_vs_actual(ctx: RunContext) -> list[dict[str, Any]]:
    known = actuals(ctx.progress, ctx.facts)

    def iso(value: Any) -> str | None:
        return _local(ctx, value) if value is not None else None

    out: list[dict[str, Any]] = []
    for line in ctx.packet.timeline:
        actual = known.get(line.id)
        out.append(
            {
                "checkpoint": line.id,
                "planned_start": _local(ctx, line.start),
                "planned_end": _local(ctx, line.end),
                "actual_start": _local(ctx, actual.started_at if actual else None),
                "actual_end": _local(ctx, actual.ended_at if actual else None),
            }
        )
    return out


def to_markdown(evidence: dict[str, Any]) -> str:
    plan = evidence["plan"]
    out = [
        f"# Evidence: {plan['title']}",
        "",
        f"- Run: `{evidence['run']}`",
        f"- Plan: `{plan['id']}` revision `{plan['revision']}`",
        f"- Change record: {plan['change_record'] or '—'}",
        f"- Final state: **{evidence.get('final_state_words', evidence['final_state'])}**",
        *([f"- Supersedes run `{evidence['supersedes']}`"] if evidence.get("supersedes") else []),
        *([f"- Superseded by run `{evidence['superseded_by']}`"] if evidence.get("superseded_by") else []),
        f"- Ledger: {evidence['ledger']['entries']} entries, "
        f"{'verified' if evidence['ledger']['verified'] else 'BROKEN: ' + evidence['ledger']['problem']}, "
        f"head `{evidence['ledger']['head']}`",
        "",
        "## Sign-offs",
    ]
    out += [
        f"- {s['role']}: {s['user']} at {s['at']} (revision `{s['revision'][:12]}`)"
        for s in evidence["signoffs"]
    ]
    out += ["", "## Packet versions"]
    for p in evidence["packets"]:
        adopted = p["adopted"]
        how = (
            f"adopted by {adopted['by']} ({adopted['role'] or 'initial'}) at {adopted['at']}"
            if adopted
            else ""
        )
        out.append(f"- v{p['version']} {p['state']}: {p['reason']} `{p['hash'][:12]}` {how}".rstrip())
    out += ["", f"## Planned and actual (packet v{_authoritative(evidence)})"]
    out += [
        f"- {t['checkpoint']}: planned {t['planned_start']} to {t['planned_end']}; actual "
        f"{t['actual_start'] or 'not started'} to {t['actual_end'] or 'not ended'}"
        for t in evidence.get("timeline", [])
    ]
    out += ["", "## Readiness evidence"]
    for r in evidence["readiness"]:
        gates = "; ".join(
            f"{g}: " + ", ".join(f"{x['value']}" for x in rs[-3:]) for g, rs in r["gate_results"].items()
        )
        out.append(
            f"- {r['checkpoint']} done {r['done_at']} by {', '.join(r['done_by']) or 'engine'}"
            + (f" — {gates}" if gates else "")
        )
    out += ["", "## Holds"]
    for h in evidence["holds"]:
        roles = ", ".join(h["release_by"])
        out.append(f"- `{h['id']}` ({h['source']}, {h['mode']} of {roles}): {h['reason']} — {h['state']}")
        for r in h["releases"]:
            behalf = f" on behalf of {r['on_behalf_of']}" if r["on_behalf_of"] else ""
            seen = ", ".join(f"{t['gate']}={t['value']}" for t in r["telemetry"])
            out.append(
                f"  - released by {r['user']} as {r['role']}{behalf} at {r['at']}"
                + (f"; telemetry {seen}" if seen else "")
            )
    out += ["", "## Traffic"]
    out += [
        f"- {t['at']} {t['cohort']} {t['previous_percent']:g}% → {t['percent']:g}% ({t['cause']})"
        for t in evidence["traffic"]
    ]
    care = evidence.get("hypercare")
    if care:
        out += ["", "## Hyper-care"]
        out.append(
            f"- {care['since']} to {care['until']} on {', '.join(care['gates'])}: {care['checks']} checks, "
            f"{care['failed_checks']} not passing; "
            + (f"ended {care['ended']}" if care["ended"] else "not ended")
        )
        out += [f"  - #{f['seq']} {f['actor']} at {f['at']}: {f['action']}" for f in care["failures"]]
    out += ["", "## Steps"]
    out += [f"- #{st['seq']} {st['at']}: {_step_sentence(st)}" for st in evidence.get("steps", [])]
    out += ["", "## Per stage: time held, frozen and paused; each gate's worst reading"]
    for st in evidence.get("stages", []):
        out.append(
            f"- {st['checkpoint']}: held {st['time_held_seconds'] // 60} min, "
            f"frozen {st['time_frozen_seconds'] // 60} min, paused {st['time_paused_seconds'] // 60} min"
        )
        out += [f"  - {_gate_line(g)}" for g in st.get("gates", [])]
    out += ["", "## Rollbacks"]
    out += [f"- #{r['seq']} {r['kind']} by {r['actor']} at {r['at']}" for r in evidence["rollbacks"]] or [
        "- none"
    ]
    out += ["", "## Refusals"]
    out += [
        f"- #{r['seq']} {r['actor']} {r.get('action', '')}: {r.get('reason', '')}"
        for r in evidence["refusals"]
    ] or ["- none"]
    return "\n".join(out) + "\n"


def _gate_line(gate: dict[str, Any]) -> str:
    checks = f"{gate['checks']} check{'s' if gate['checks'] != 1 else ''}"
    worst = "no reading" if gate["worst"] is None else f"worst {gate['worst']:g}"
    rule = f" (passes {gate['rule']})" if gate["rule"] else ""
    return f"{gate['gate']}: {worst}{rule}; {checks}, {gate['failed']} failed, {gate['no_data']} without data"


async def export_evidence(cmd: ExportEvidence, deps: Deps) -> Outcome:
    if cmd.user is not None:
        # Posting the evidence summary to the war room is for the people in the plan.
        user = cmd.user

        async def member(ctx: RunContext) -> Outcome:
            if not any(user in role.members for role in ctx.plan.roles.values()):
                raise Refused(f"{user} has no role in this plan, so cannot post its evidence.")
            return Outcome.done("", run=ctx.run)

        allowed = await on_run(cmd.run, user=user, action="evidence", deps=deps, body=member)
        if not allowed.ok:
            return allowed
    evidence = await build_evidence(cmd.run, deps)
    if evidence is None:
        return Outcome.refused(f"There is no run '{cmd.run}'.")
    ledger_state = evidence["ledger"]
    async with deps.uow.transaction(run_id=cmd.run) as tx:
        ctx = await load(tx, cmd.run, deps.clock.now())
        assert ctx is not None
        exported = msg.Evidence(
            state=evidence["final_state"],
            ledger_ok=ledger_state["verified"],
            ledger_head=ledger_state["head"],
            problem=ledger_state["problem"] or None,
            counts={
                "packets": len(evidence["packets"]),
                "signoffs": len(evidence["signoffs"]),
                "holds": len(evidence["holds"]),
                "gates": sum(len(r["gate_results"]) for r in evidence["readiness"]),
                "rollbacks": len(evidence["rollbacks"]),
            },
        )
        await post(ctx, to=ctx.plan.channel, message=exported)
        # The packet itself, as a file in the run's thread: what an auditor keeps.
        document = msg.EvidenceFile(
            filename=f"{cmd.run}-evidence.md",
            title=f"Evidence: {ctx.plan.title}",
            content=to_markdown(evidence),
        )
        await post(ctx, to=ctx.plan.channel, message=document)
    deps.on_change(cmd.run)
    return Outcome.done(
        f"Evidence for {cmd.run}: {evidence['final_state']}, ledger "
        f"{'verified' if ledger_state['verified'] else 'BROKEN'}.",
        run=cmd.run,
        evidence=evidence,
        markdown=to_markdown(evidence),
    )
