"""Gate results inside the stage engine: evidence for the checkpoint in flight, and the rollback
matrix when a gate fails.

Results count only for the checkpoint in flight and only for its own gates. Results for any other
checkpoint are late or misrouted scheduler output: they change nothing and are put on record.
A failing batch takes the most severe of its gates' actions (see `gates.SEVERITY`). While frozen,
failures are recorded and told but take no action: a freeze forbids every traffic change, and the
people who froze the run decide what comes next.

During hyper-care nothing is in flight: results for the pseudo-checkpoint `hypercare` count, for
the plan's hyper-care gates, and a failure takes the same actions. The cohort a rollback_cohort
puts back is the last traffic checkpoint's; holds are opened on `hypercare`; the people told are
the owners of the traffic checkpoints and the start_and_rollback roles (`engine.hypercare`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from packets.durations import format_duration
from packets.engine import hypercare, watch
from packets.engine.draft import Draft
from packets.engine.effects import LedgerKind
from packets.engine.events import GateResults
from packets.engine.holds import HoldNeed, has_open_hold, open_hold
from packets.engine.progress import Stop
from packets.engine.traffic import global_rollback, hold_after_rollback, rollback_cohort
from packets.gates import (
    GateResult,
    GateTally,
    Outcome,
    RollbackMatrix,
    Verdict,
    failure_acts,
    readiness_timed_out,
    remember,
    streak_passes,
    tally,
    verdict,
)
from packets.messages import GateAlert
from packets.packet import HoldSource
from packets.plan import Action


def take(d: Draft, event: GateResults) -> None:
    in_hypercare = d.progress.in_hypercare and event.checkpoint == hypercare.HYPERCARE
    watching = watch.watched(d.plan, d.progress)
    on_watch = not in_hypercare and event.checkpoint == watch.WATCH and bool(watching)
    flights = d.flights()
    checkpoint = (
        hypercare.HYPERCARE
        if in_hypercare
        else watch.WATCH
        if on_watch
        else event.checkpoint
        if event.checkpoint in flights
        else next(iter(flights), None)
    )
    if checkpoint is None or checkpoint != event.checkpoint:
        d.ledger(
            LedgerKind.GATE_RESULTS_IGNORED,
            actor="engine",
            payload={
                "checkpoint": event.checkpoint,
                "in_flight": checkpoint,
                "results": [r.as_json() for r in event.results],
            },
        )
        return
    own: tuple[str, ...] = (
        d.plan.hypercare_gates() if in_hypercare else () if on_watch else tuple(d.spec(checkpoint).gates)
    )
    gates = (*own, *watching)
    results = [_stamped(d, r) for r in event.results if r.gate in gates]
    # Each gate's readings before these, to tell a failure that starts from one that goes on.
    before = {**d.progress.watch_evidence, **d.progress.evidence_of(checkpoint)}
    evidence = dict(d.progress.evidence_of(checkpoint))
    tallies = dict(d.progress.tallies_of(checkpoint))
    for result in (r for r in results if r.gate in own):
        name = result.gate
        evidence[name] = remember(
            evidence.get(name, ()), result, keep=d.needed_passes(name), no_data=d.no_data(name)
        )
        counted = tally(tallies.get(name, GateTally()), result, no_data=d.no_data(name))
        if streak_passes(evidence[name], needed=d.needed_passes(name), no_data=d.no_data(name)):
            counted = replace(counted, ready=True)
        tallies[name] = counted
    if in_hypercare:
        d.update(hypercare_evidence=evidence, hypercare_tallies=tallies)
    elif not on_watch:
        # The watch is no checkpoint: its readings live in `watch_evidence` only.
        d.update_checkpoint(checkpoint, evidence=evidence, tallies=tallies)
    watched_evidence = dict(d.progress.watch_evidence)
    for result in results:
        if result.gate in watching:
            watched_evidence[result.gate] = remember(
                watched_evidence.get(result.gate, ()),
                result,
                keep=d.needed_passes(result.gate),
                no_data=d.no_data(result.gate),
            )
    if watching:
        d.update(watch_evidence=watched_evidence)
    started = (
        d.progress.hypercare_since if in_hypercare else None if on_watch else _attempt_start(d, checkpoint)
    )
    failing = [
        r
        for r in results
        if (
            _acts(d, r, tallies[r.gate], started=started)
            if r.gate in tallies and r.gate in own
            else verdict(r.outcome, d.no_data(r.gate)) is Verdict.FAIL
        )
    ]
    decision = RollbackMatrix.of(d.plan).decide(failing)
    if decision is None:
        return
    action, chosen = decision
    # A watched gate's failure outside a checkpoint of its own acts on the line in flight (or
    # held), else on the last traffic checkpoint that moved.
    target = (d.in_flight() or hypercare.last_traffic_checkpoint(d)) if on_watch else checkpoint
    actor = f"gate:{chosen.gate}"
    frozen = d.progress.frozen is not None
    d.ledger(
        LedgerKind.GATE_FAILED,
        actor=actor,
        payload={
            "checkpoint": checkpoint,
            "action": action,
            "taken": not frozen,
            "results": [r.as_json() for r in results],
        },
    )
    if target is None:
        roles = list(d.plan.authority.start_and_rollback)
    elif in_hypercare:
        roles = hypercare.owner_roles(d)
    else:
        roles = [d.planned(target).owner_role, *d.plan.authority.start_and_rollback]
    gate = d.plan.gates.get(chosen.gate)
    outcome = str(chosen.outcome)
    alert = GateAlert(
        checkpoint=target or checkpoint,
        gate=chosen.gate,
        value=chosen.value,
        outcome="no_data" if outcome == "no-data" else outcome,
        reason=chosen.reason,
        action=action,
        taken=not frozen,
        threshold=gate.pass_ if gate else "",
        at=d.at.isoformat(),
    )
    # Every failing reading is in the ledger; the room hears of it when the failure starts or
    # asks for a stop that is not in place (a hold released while the gate still fails), not
    # at every reading while the stop it caused stands.
    goes_on = _failed_last(d, before.get(chosen.gate, ()))
    if not (goes_on and _stop_in_place(d, action, target or checkpoint)):
        d.notify(alert, roles=roles)
    if not frozen:
        _act(d, action, target or checkpoint, failing, chosen, actor, watched=on_watch)
    if in_hypercare and d.progress.ended_at is None:
        # A breach during hyper-care: it goes on longer (`hypercare.extend_on_breach`).
        hypercare.breached(d, gate=chosen.gate)


def _failed_last(d: Draft, readings: tuple[GateResult, ...]) -> bool:
    """Whether the gate's reading before this one failed."""
    return bool(readings) and verdict(readings[-1].outcome, d.no_data(readings[-1].gate)) is Verdict.FAIL


def _stop_in_place(d: Draft, action: Action, checkpoint: str) -> bool:
    """Whether the run already stands where a failure's `action` would put it (frozen: nothing
    a gate asks for is taken, so telling it again changes nothing)."""
    if d.progress.frozen is not None:
        return True
    if action == "pause":
        return d.progress.paused is not None
    if action == "hold":
        return has_open_hold(d, checkpoint, HoldSource.GATE)
    return False


def _acts(d: Draft, result: GateResult, counted: GateTally, *, started: datetime | None) -> bool:
    """Whether this reading makes its gate take its action now (per-gate policy).

    A readiness gate that has not yet gathered its passes is waiting, not failing: it keeps the
    checkpoint from completing and acts only once its timeout ran out. Any other failing reading
    acts once the gate's failures exceed its `failure_limit` and it has failed for its `for`.
    """
    if verdict(result.outcome, d.no_data(result.gate)) is not Verdict.FAIL:
        return False
    gate = d.plan.gates.get(result.gate)
    if gate is not None and gate.kind == "readiness" and not counted.ready:
        timeout = gate.timeout or timedelta(0)
        return readiness_timed_out(counted, started=started, at=d.at, timeout=timeout)
    return failure_acts(counted, at=d.at, policy=d.plan.gate_policy_of(result.gate))


def _attempt_start(d: Draft, checkpoint: str) -> datetime | None:
    # `_start` sets soak_until = start + soak for each attempt: the attempt began soak before it.
    soak_until = d.checkpoint(checkpoint).soak_until
    return soak_until - d.spec(checkpoint).soak if soak_until is not None else None


def _stamped(d: Draft, result: GateResult) -> GateResult:
    return replace(result, reason=result.reason, at=result.at or d.at)


def _act(
    d: Draft,
    action: Action,
    checkpoint: str,
    failing: list[GateResult],
    chosen: GateResult,
    actor: str,
    *,
    watched: bool = False,
) -> None:
    why = {"event": d.event.kind, "chosen_by": chosen.gate, "gates": [r.as_json() for r in failing]}
    reason = _reason(d, checkpoint, failing, chosen, watched=watched)
    if action == "pause":
        if d.progress.paused is None:
            d.update(paused=Stop(by=actor, reason=reason, at=d.at))
            d.ledger(LedgerKind.RUN_PAUSED, actor=actor, payload={"reason": reason, "cause": why})
            d.tell_state("paused", roles=d.plan.authority.pausers, data={"by": actor, "reason": reason})
    elif action == "hold":
        if not has_open_hold(d, checkpoint, HoldSource.GATE):
            need = HoldNeed(reason, HoldSource.GATE, tuple(d.plan.authority.start_and_rollback))
            open_hold(d, need, checkpoint=checkpoint, opened_by=actor)
    elif action == "rollback_cohort":
        # During hyper-care the cohort of the last traffic checkpoint; during the stages the cohort
        # of the checkpoint whose gate failed (a branch beside it keeps its traffic).
        target = (
            hypercare.last_traffic_checkpoint(d)
            if checkpoint == hypercare.HYPERCARE or watched
            else checkpoint
            if d.spec(checkpoint).traffic is not None
            else None
        )
        rollback_cohort(d, actor=actor, why=why, checkpoint=target)
        hold_after_rollback(d, checkpoint, reason=reason, source=HoldSource.GATE, actor=actor)
    elif action == "freeze":
        d.update(frozen=Stop(by=actor, reason=reason, at=d.at))
        d.ledger(LedgerKind.RUN_FROZEN, actor=actor, payload={"reason": reason, "cause": why})
        d.tell_state("frozen", roles=d.plan.authority.pausers, data={"by": actor, "reason": reason})
    else:
        global_rollback(d, actor=actor, why=why, reason=reason, checkpoint=checkpoint)


def _reason(
    d: Draft, checkpoint: str, failing: list[GateResult], chosen: GateResult, *, watched: bool
) -> str:
    """The gate that chose the action first (its reading, threshold, how long it has failed, the
    action), then every other failing gate."""
    where = "during hyper-care" if checkpoint == hypercare.HYPERCARE else f"at {checkpoint}"
    if watched:
        where += ", watched while traffic is live"
    action = RollbackMatrix.of(d.plan).action_for(chosen.gate)
    text = f"gate {_described(d, chosen)} {where}: {action.replace('_', ' ')}"
    others = [_described(d, r) for r in failing if r.gate != chosen.gate]
    if others:
        text += "; also failing: " + "; ".join(others)
    return text


def _described(d: Draft, result: GateResult) -> str:
    gate = d.plan.gates.get(result.gate)
    threshold = f" (pass {gate.pass_})" if gate is not None else ""
    if result.value is not None:
        reading = f"read {result.value:g}"
    elif result.outcome is Outcome.FAIL:
        reading = "fired an alert"  # a pushed alert without a number (handlers/alerts.py)
    else:
        reading = "read no data"
    since, whole = _failing_since(d, result)
    lasted = ""
    if since is not None and since < d.at:
        # The evidence kept is the last `consecutive_passes` readings: all failing means longer.
        lasted = f", failing for {'at least ' if whole else ''}{format_duration(d.at - since)}"
    detail = f" ({result.reason})" if result.value is None and result.reason else ""
    return f"{result.gate} {reading}{threshold}{lasted}{detail}"


def _failing_since(d: Draft, result: GateResult) -> tuple[datetime | None, bool]:
    """When the gate's current run of failing readings began, from the evidence kept, and whether
    every reading kept fails (so it began earlier still)."""
    window = d.progress.watch_evidence.get(result.gate) or ()
    for evidence in (d.progress.hypercare_evidence, *(c.evidence for c in d.progress.checkpoints.values())):
        if len(evidence.get(result.gate, ())) > len(window):
            window = evidence[result.gate]
    since = None
    for r in reversed(window):
        if verdict(r.outcome, d.no_data(r.gate)) is not Verdict.FAIL:
            return since, False
        since = r.at
    return since, True
