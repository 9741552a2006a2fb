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
from packets.engine.progress import RunProgress, RunState
from packets.packet import HoldSource
from packets.plan import HYPERCARE_CHECKPOINT, CadenceStep, Plan

HYPERCARE = HYPERCARE_CHECKPOINT


def ends_at(plan: Plan, since: datetime) -> datetime | None:
    """When the hyper-care that began at `since` ends unless breached, or None for a plan without it."""
    return since + plan.hypercare.length if plan.hypercare is not None else None


def cadence_start(progress: RunProgress) -> datetime | None:
    """The moment the cadence is counted from: the start of hyper-care, or later after a breach."""
    return progress.hypercare_clock or progress.hypercare_since


def until(plan: Plan, progress: RunProgress) -> datetime | None:
    """When the run's hyper-care ends, breaches included; None before it (or without it)."""
    start = cadence_start(progress)
    if start is None or plan.hypercare is None:
        return None
    return progress.hypercare_until or start + plan.hypercare.length


def step_now(plan: Plan, progress: RunProgress, now: datetime) -> tuple[int, CadenceStep] | None:
    """The cadence step in force at `now` (past the cadence, in an extension: the last step), or
    None before hyper-care or once it is over."""
    start, end = cadence_start(progress), until(plan, progress)
    if plan.hypercare is None or start is None or end is None or now >= end:
        return None
    found = plan.hypercare.step_at(now - start)
    return found if found is not None else (len(plan.hypercare.cadence) - 1, plan.hypercare.cadence[-1])


def slot_now(plan: Plan, progress: RunProgress, now: datetime, *, business_hours: bool = True) -> int | None:
    """The hyper-care check slot due at `now`, or None: before or after hyper-care, or (with
    `business_hours`) outside the `between` hours of the step in force (plan window's offset)."""
    step = step_now(plan, progress, now)
    start = cadence_start(progress)
    if step is None or start is None or plan.hypercare is None:
        return None
    if business_hours and not step[1].in_hours(now.astimezone(plan.window.start.tzinfo).time()):
        return None
    slot = plan.hypercare.slot_at(now - start, past_end=True)
    return None if slot is None else progress.hypercare_slot_base + slot


def breached(d: Draft, *, gate: str) -> None:
    """A hyper-care gate failed (its failure acts): hyper-care goes on longer.

    With `extend_on_breach`, it ends no sooner than that long after the failure (checks go on at
    the last step's interval past the cadence). Without it, the cadence step in force starts
    again now and the steps after it follow. Slot numbers only ever grow, so no reading recorded
    before the breach is mistaken for one after it.
    """
    care, progress = d.plan.hypercare, d.progress
    start, end = cadence_start(progress), until(d.plan, progress)
    if care is None or start is None or end is None or d.at >= end:
        return
    if care.extend_on_breach is not None:
        longer = d.at + care.extend_on_breach
        if longer <= end:
            return
        d.update(hypercare_until=longer)
        how = f"until at least {format_duration(care.extend_on_breach)} after the failure"
    else:
        found = care.step_at(d.at - start)
        index = found[0] if found is not None else len(care.cadence) - 1
        begins = care.step_start(index)
        restarted = d.at - begins
        old_slot = care.slot_at(d.at - start, past_end=True) or 0
        # The failing reading's slot is the first of the restarted step: the next check is one
        # interval on, and slot numbers after it were never used before.
        base = progress.hypercare_slot_base + old_slot - (care.slot_at(begins) or 0)
        longer = restarted + care.length
        d.update(hypercare_clock=restarted, hypercare_until=None, hypercare_slot_base=base)
        every = format_duration(care.cadence[index].every)
        how = f"the cadence starts again from step {index + 1} (every {every})"
    d.ledger(
        LedgerKind.HYPERCARE_EXTENDED,
        actor=f"gate:{gate}",
        payload={"gate": gate, "was_until": end.isoformat(), "until": longer.isoformat(), "how": how},
    )


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
    ends = d.at + d.plan.hypercare.length
    d.update(
        state=RunState.HYPERCARE,
        hypercare_since=d.at,
        hypercare_evidence={},
        hypercare_tallies={},
        hypercare_clock=None,
        hypercare_until=None,
        hypercare_slot_base=0,
    )
    d.emit(ScheduleGateChecks(checkpoint=HYPERCARE, gates=gates))
    d.ledger(
        LedgerKind.HYPERCARE_STARTED,
        actor="engine",
        payload={
            "since": d.at.isoformat(),
            "until": ends.isoformat(),
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
        data={"until": ends.isoformat(), "gates": ", ".join(gates), "cadence": _cadence_text(d.plan)},
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
    ends = until(d.plan, d.progress)
    if since is None or ends is None or d.at < ends:
        return
    short = _short_of_plan(d)
    if short:
        # Hyper-care ends true: traffic short of the plan's final percentages is no success. The
        # start-and-rollback roles decide: restore the cohort (`engine.restore`, a traffic step the
        # plan allows, checked before moving; hyper-care starts again) or roll back all. A release
        # alone keeps watching, and the next tick holds again.
        if not has_open_hold(d, HYPERCARE):
            reason = (
                "hyper-care ran its course but "
                + "; ".join(
                    f"{cohort} is at {now:g}% of the plan's {final:g}%" for cohort, now, final in short
                )
                + "; the run stays held until the start and rollback roles restore it"
                + " (/cutover restore COHORT) or roll back all"
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
            "until": ends.isoformat(),
            "gates": {g: [r.as_json() for r in rs] for g, rs in d.progress.hypercare_evidence.items()},
        },
    )
    assert d.plan.hypercare is not None
    length = format_duration(ends - since)
    finish(
        d,
        RunState.COMPLETED,
        actor="engine",
        why=f"every checkpoint is done and hyper-care ran its course ({length})",
    )
