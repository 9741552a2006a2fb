"""The cutover decision record (`cutover-bot evidence RUN --format cdr`): the evidence packet
retold in the shape a change board files. It has seven sections: context, scope, evidence,
decision, constraints, rollback criteria and consequences.

It is built from the evidence dict alone (handlers/evidence.build_evidence), so it says nothing
the evidence does not, and it can be rendered again from an export. Every section is made of
sentences. A section with nothing to say says so.
"""

from __future__ import annotations

from typing import Any

from packets.engine.progress import TERMINAL

# What a failing gate makes the engine do, as a sentence's verb phrase.
_ACTIONS = {
    "pause": "pause the run",
    "hold": "hold the stage until someone releases it",
    "rollback_cohort": "roll the stage's cohort back",
    "global_rollback": "roll every cohort back",
    "freeze": "freeze the run",
}
_NO_DATA = {
    "fail": "counts as a failure",
    "hold": "holds the stage",
    "pass": "counts as a pass",
    "ignore": "is ignored",
}


def to_cdr(evidence: dict[str, Any]) -> str:
    plan = evidence["plan"]
    out = [f"# Cutover decision record: {plan['title']}", ""]
    out += _context(evidence)
    out += _scope(evidence)
    out += _evidence(evidence)
    out += _decision(evidence)
    out += _constraints(evidence)
    out += _rollback_criteria(evidence)
    out += _consequences(evidence)
    return "\n".join(out).rstrip() + "\n"


def _section(title: str, lines: list[str], *, empty: str) -> list[str]:
    return [f"## {title}", "", *(lines or [empty]), ""]


def _context(evidence: dict[str, Any]) -> list[str]:
    plan = evidence["plan"]
    timeline = evidence.get("timeline", [])
    started = next((t["actual_start"] for t in timeline if t["actual_start"]), None)
    ended = max((t["actual_end"] for t in timeline if t["actual_end"]), default=None)
    lines = [
        f"Run `{evidence['run']}` of plan `{plan['id']}` (revision `{plan['revision'][:12]}`), "
        f"change record {plan['change_record'] or 'not given'}, in the war room <#{plan['channel']}>.",
        f"The plan's window ran from {plan['window']['start']} to {plan['window']['end']}.",
        f"The run started at {started}." if started else "The run never started a checkpoint.",
    ]
    if ended:
        lines.append(f"Its last checkpoint to finish ended at {ended}.")
    if evidence.get("supersedes"):
        lines.append(f"It replaced run `{evidence['supersedes']}`.")
    return _section("Context", lines, empty="")


def _scope(evidence: dict[str, Any]) -> list[str]:
    lines = []
    for cp in evidence.get("scope", []):
        moves = f", moving cohort {cp['cohort']} to {cp['percent']:g}%" if cp["cohort"] else ""
        lines.append(f"- {cp['checkpoint']}: {cp['title']}, owned by {cp['owner']}{moves}.")
    return _section("Scope", lines, empty="The plan names no checkpoints.")


def _evidence(evidence: dict[str, Any]) -> list[str]:
    ledger = evidence["ledger"]
    lines = [
        f"- {s['role']} signed off: {s['user']} at {s['at']}." for s in evidence.get("signoffs", [])
    ] or ["- Nobody signed off."]
    for stage in evidence.get("stages", []):
        for gate in stage.get("gates", []):
            worst = "no reading" if gate["worst"] is None else f"worst reading {gate['worst']:g}"
            lines.append(
                f"- {stage['checkpoint']}, {gate['gate']} (passes {gate['rule']}): {worst}, "
                f"{gate['failed']} of {gate['checks']} checks failed, {gate['no_data']} without data."
            )
    verdict = "verifies" if ledger["verified"] else f"does NOT verify ({ledger['problem']})"
    lines.append(
        f"- The ledger holds {ledger['entries']} entries, {verdict}, and ends at `{ledger['head']}`."
    )
    return _section("Evidence", lines, empty="")


def _decision(evidence: dict[str, Any]) -> list[str]:
    lines = []
    for packet in evidence.get("packets", []):
        adopted = packet.get("adopted")
        if adopted and adopted["role"]:
            lines.append(
                f"- Packet v{packet['version']} was adopted by {adopted['by']} "
                f"as {adopted['role']} at {adopted['at']}."
            )
        elif adopted:
            # The first packet: in force from the run's opening, no adoption asked.
            lines.append(
                f"- Packet v{packet['version']} was in force from {adopted['at']} ({adopted['by']})."
            )
    for hold in evidence.get("holds", []):
        for release in hold.get("releases", []):
            behalf = f" on behalf of {release['on_behalf_of']}" if release.get("on_behalf_of") else ""
            seen = ", ".join(
                f"{t['gate']} {_value(t['value'])} ({t['outcome']})" for t in release.get("telemetry", [])
            )
            lines.append(
                f"- {release['user']} released the hold on {hold['checkpoint']} as {release['role']}"
                f"{behalf} at {release['at']}" + (f", having seen {seen}." if seen else ".")
            )
    for step in evidence.get("steps", []):
        if step["kind"] in ("run_aborted", "run_frozen", "run_paused"):
            reason = step["payload"].get("why") or step["payload"].get("reason") or "no reason given"
            verb = {"run_aborted": "aborted", "run_frozen": "froze", "run_paused": "paused"}[step["kind"]]
            lines.append(f"- {step['by']} {verb} the run at {step['at']}: {reason}.")
    for rollback in evidence.get("rollbacks", []):
        lines.append(f"- {rollback['actor']} at {rollback['at']}: {rollback['kind'].replace('_', ' ')}.")
    words = evidence.get("final_state_words", evidence["final_state"])
    lines.append(
        f"- The run ended {words}."
        if evidence["final_state"] in TERMINAL
        else f"- When this record was made, the run was still {words}."
    )
    return _section("Decision", lines, empty="")


def _constraints(evidence: dict[str, Any]) -> list[str]:
    plan = evidence["plan"]
    lines = [f"- Everything had to finish before {plan['window']['end']}."]
    for cp in evidence.get("scope", []):
        if cp["not_after"]:
            lines.append(f"- {cp['checkpoint']} had to end by {cp['not_after']}.")
        if cp["protected"]:
            lines.append(f"- {cp['checkpoint']} was protected: it could not move without a release.")
        if cp["hold"]:
            roles = cp["hold"]["release_by"]
            who = (
                roles[0]
                if len(roles) == 1
                else f"each of {' and '.join(roles)}"
                if cp["hold"]["mode"] == "all"
                else f"any of {', '.join(roles)}"
            )
            lines.append(f"- {cp['checkpoint']} waited on a hold released by {who}.")
    return _section("Constraints", lines, empty="")


def _rollback_criteria(evidence: dict[str, Any]) -> list[str]:
    lines = [
        f"- When {c['gate']} fails (it passes {c['rule']}), the engine would "
        f"{_ACTIONS.get(c['on_fail'], c['on_fail'])}; "
        f"a reading without data {_NO_DATA.get(c['no_data'], c['no_data'])}."
        for c in evidence.get("rollback_criteria", [])
    ]
    return _section("Rollback criteria", lines, empty="The plan names no gates.")


def _consequences(evidence: dict[str, Any]) -> list[str]:
    traffic = evidence.get("final_traffic", {})
    lines = [
        f"- Cohort {cohort} was left at {percent:g}% on the new service."
        for cohort, percent in traffic.items()
    ]
    if not traffic:
        lines.append("- No traffic was moved to the new service.")
    late = [
        t["checkpoint"]
        for t in evidence.get("timeline", [])
        if t["actual_end"] and t["planned_end"] and t["actual_end"] > t["planned_end"]
    ]
    if late:
        checkpoints = f"{len(late)} checkpoint{'s' if len(late) != 1 else ''}"
        lines.append(f"- {checkpoints} ended later than planned: {', '.join(late)}.")
    care = evidence.get("hypercare")
    if care:
        lines.append(f"- Hyper-care: {care['failed_checks']} of its checks did not pass.")
    if evidence.get("superseded_by"):
        lines.append(f"- Run `{evidence['superseded_by']}` replaced this run.")
    return _section("Consequences", lines, empty="")


def _value(value: float | None) -> str:
    return "without data" if value is None else f"{value:g}"
