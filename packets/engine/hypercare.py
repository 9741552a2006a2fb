"""Hyper-care: the run's last phase, after its last checkpoint completed.

When the plan declares `hypercare`, the run does not end with its last checkpoint: it enters the
state `hypercare`, and gate checks go on under the pseudo-checkpoint `hypercare` on the plan's
widening cadence. A hyper-care gate that fails takes its action from the rollback matrix exactly
as during the stages (the most severe wins): pause, hold, rollback_cohort (the cohort of the last
traffic checkpoint goes back to its percent before that checkpoint, then a hold), freeze, or
global_rollback. Released, resumed or unfrozen, the run is back in `hypercare`: nothing is left to
advance, so traffic never rises again. A tick at or after the end of the last cadence step
completes the run.

The acting owners told of a hyper-care gate failure are the owners of the traffic checkpoints and
the roles that may start and roll back the run: the people who answer for the traffic now on the
new path.
"""

from __future__ import annotations

from datetime import datetime

from packets.durations import format_duration
from packets.engine.draft import Draft
from packets.engine.effects import LedgerKind, ScheduleGateChecks, StopGateChecks
from packets.engine.end import finish
from packets.engine.holds import HoldNeed, has_open_hold, open_hold
from packets.engine.progress import RunState
from packets.packet import HoldSource
from packets.plan import HYPERCARE_CHECKPOINT, Plan

HYPERCARE = HYPERCARE_CHECKPOINT


def ends_at(plan: Plan, since: datetime) -> datetime | None:
    """When the hyper-care that began at `since` ends, or None for a plan without it."""
    return since + plan.hypercare.length if plan.hypercare is not None else None


def owner_roles(d: Draft) -> list[str]:
    """Who answers for the traffic on the new path: traffic checkpoint owners, then start_and_rollback."""
    owners = [d.planned(c).owner_role for c in d.order if d.spec(c).traffic is not None]
    return list(dict.fromkeys([*owners, *d.plan.authority.start_and_rollback]))


def last_traffic_checkpoint(d: Draft) -> str | None:
    """The last checkpoint of the authoritative timeline that shifts traffic."""
    shifting = [c for c in d.order if d.spec(c).traffic is not None]
    return shifting[-1] if shifting else None


def _cadence_text(plan: Plan) -> str:
    assert plan.hypercare is not None
    return ", ".join(
        f"every {format_duration(s.every)} until {format_duration(s.until)}" for s in plan.hypercare.cadence
    )


def begin(d: Draft) -> None:
    """Every checkpoint is done: gate checks go on at the hyper-care cadence."""
    assert d.plan.hypercare is not None
    gates = d.plan.hypercare_gates()
    until = d.at + d.plan.hypercare.length
    d.update(state=RunState.HYPERCARE, hypercare_since=d.at, hypercare_evidence={}, hypercare_tallies={})
    d.emit(ScheduleGateChecks(checkpoint=HYPERCARE, gates=gates))
    d.ledger(
        LedgerKind.HYPERCARE_STARTED,
        actor="engine",
        payload={
            "since": d.at.isoformat(),
            "until": until.isoformat(),
            "gates": list(gates),
            "cadence": [
                {"every": format_duration(s.every), "until": format_duration(s.until)}
                for s in d.plan.hypercare.cadence
            ],
            "traffic": dict(d.progress.traffic),
        },
    )
    d.tell_state(
        "hypercare",
        roles=owner_roles(d),
        data={"until": until.isoformat(), "gates": ", ".join(gates), "cadence": _cadence_text(d.plan)},
    )


def final_percents(d: Draft) -> dict[str, float]:
    """Per cohort, the percent of its last traffic checkpoint on the authoritative timeline."""
    final: dict[str, float] = {}
    for checkpoint in d.order:
        traffic = d.spec(checkpoint).traffic
        if traffic is not None:
            final[traffic.cohort] = traffic.percent
    return final


def _short_of_plan(d: Draft) -> list[tuple[str, float, float]]:
    return [
        (cohort, d.progress.traffic.get(cohort, 0.0), final)
        for cohort, final in sorted(final_percents(d).items())
        if abs(d.progress.traffic.get(cohort, 0.0) - final) > 1e-9
    ]


def end_if_due(d: Draft) -> None:
    """Complete the run once the last cadence step ran out; before that a tick changes nothing."""
    since = d.progress.hypercare_since
    until = ends_at(d.plan, since) if since is not None else None
    if since is None or until is None or d.at < until:
        return
    short = _short_of_plan(d)
    if short:
        # Hyper-care ends true: traffic short of the plan's final percentages is no success. The
        # start-and-rollback roles decide. Restoring through a new traffic step is not built yet:
        # a release keeps watching and the next tick holds again, so rolling back all ends it.
        if not has_open_hold(d, HYPERCARE):
            reason = (
                "hyper-care ran its course but "
                + "; ".join(
                    f"{cohort} is at {now:g}% of the plan's {final:g}%" for cohort, now, final in short
                )
                + "; the run stays held until the start and rollback roles roll back all"
            )
            need = HoldNeed(reason, HoldSource.PLAN, tuple(d.plan.authority.start_and_rollback))
            open_hold(d, need, checkpoint=HYPERCARE, opened_by="engine")
            d.update(state=RunState.HELD)
        return
    d.emit(StopGateChecks(checkpoint=None))
    d.ledger(
        LedgerKind.HYPERCARE_ENDED,
        actor="engine",
        payload={
            "since": since.isoformat(),
            "until": until.isoformat(),
            "gates": {g: [r.as_json() for r in rs] for g, rs in d.progress.hypercare_evidence.items()},
        },
    )
    assert d.plan.hypercare is not None
    length = format_duration(d.plan.hypercare.length)
    finish(
        d,
        RunState.COMPLETED,
        actor="engine",
        why=f"every checkpoint is done and hyper-care ran its course ({length})",
    )
