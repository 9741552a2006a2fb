"""Restoring a cohort during hyper-care: the way out of a hold on traffic short of the plan.

A cohort rolled back during hyper-care leaves traffic short of the plan's final percentages, and
hyper-care then ends held, not completed (`engine.hypercare.end_if_due`). The start_and_rollback
roles decide: roll back all, or restore the cohort (`/cutover restore COHORT`): it goes back to the
percent of the last traffic checkpoint that moves it, as a traffic step the plan already allows.

Check before moving, as for any traffic increase: the restore carries fresh readings, taken for
it, of the gates that must vouch for that checkpoint's shift (its own, bar a readiness gate, and
the watched ones) and of the hyper-care gates. They go to the engine as hyper-care readings first
(`engine.gates.take`), so a failing one takes its gate's action as any reading would; then the
cohort moves only if every one of them passes. With the shift commanded, the holds on hyper-care
are withdrawn (what they held for is answered) and hyper-care starts again from now: the restored
traffic earns its own watch.

Not while paused or frozen (a freeze moves no traffic; resume or unfreeze first), not while the
control plane has not confirmed the cohort's last command.
"""

from __future__ import annotations

from packets.engine import hypercare
from packets.engine.advance import settle, shift_gates
from packets.engine.draft import Draft
from packets.engine.effects import LedgerKind
from packets.engine.errors import IllegalTransition
from packets.engine.events import GateResults, Restore
from packets.engine.gates import take
from packets.engine.holds import withdraw
from packets.engine.traffic import RESTORE, command
from packets.gates import Verdict, verdict


def _illegal(d: Draft, detail: str) -> IllegalTransition:
    return IllegalTransition(d.event, d.progress.state, detail)


def checkpoint_of(d: Draft, cohort: str) -> str | None:
    """The last traffic checkpoint of the authoritative timeline that moves `cohort`."""
    moving = [c for c in d.order if (t := d.spec(c).traffic) is not None and t.cohort == cohort]
    return moving[-1] if moving else None


def vouching_gates(d: Draft, cohort: str) -> tuple[str, ...]:
    """The gates whose fresh passing readings a restore of `cohort` needs."""
    checkpoint = checkpoint_of(d, cohort)
    own = shift_gates(d, checkpoint) if checkpoint is not None else ()
    return tuple(dict.fromkeys((*own, *d.plan.hypercare_gates())))


def restore(d: Draft, event: Restore) -> None:
    d.require(event.user, d.plan.authority.start_and_rollback, "restore traffic")
    if not d.progress.in_hypercare:
        raise _illegal(d, "a cohort is restored only during hyper-care; during the stages release the hold")
    if d.progress.paused is not None or d.progress.frozen is not None:
        raise _illegal(d, "the run is paused or frozen: resume or unfreeze it first")
    finals = hypercare.final_percents(d)
    if event.cohort not in finals:
        known = ", ".join(sorted(finals)) or "none"
        raise _illegal(d, f"no traffic checkpoint of the plan moves {event.cohort} (cohorts: {known})")
    final = finals[event.cohort]
    now = d.progress.traffic.get(event.cohort, 0.0)
    if now >= final - 1e-9:
        raise _illegal(d, f"{event.cohort} is already at the plan's {final:g}%")
    if event.cohort in d.progress.outstanding():
        raise _illegal(d, f"the control plane has not confirmed {event.cohort}'s last command yet")
    checkpoint = checkpoint_of(d, event.cohort)
    assert checkpoint is not None
    needed = vouching_gates(d, event.cohort)
    take(d, GateResults(at=event.at, checkpoint=hypercare.HYPERCARE, results=event.readings))
    latest = {r.gate: r for r in event.readings}
    not_passing = [
        g
        for g in needed
        if (r := latest.get(g)) is None
        or r.at is None
        or r.at < event.at - d.plan.gate_policy_of(g).interval
        or verdict(r.outcome, d.no_data(g)) is not Verdict.PASS
    ]
    if not_passing or d.progress.ended_at is not None or d.progress.frozen is not None:
        # The failure has taken its action already (`take`); the cohort does not move.
        d.ledger(
            LedgerKind.RESTORE_WITHHELD,
            actor=event.user,
            payload={
                "cohort": event.cohort,
                "percent": final,
                "not_passing": not_passing,
                "readings": [r.as_json() for r in event.readings],
            },
        )
        d.tell_state(
            "restore withheld",
            roles=d.plan.authority.start_and_rollback,
            data={"cohort": event.cohort, "percent": final, "gates": ", ".join(not_passing) or "none"},
        )
        settle(d)
        return
    why = {
        "event": event.kind,
        "user": event.user,
        "checkpoint": checkpoint,
        "gates": [latest[g].as_json() for g in needed],
    }
    command(
        d, cohort=event.cohort, percent=final, checkpoint=checkpoint, cause=RESTORE, actor=event.user, why=why
    )
    d.ledger(
        LedgerKind.TRAFFIC_RESTORED,
        actor=event.user,
        payload={"cohort": event.cohort, "from": now, "percent": final, "checkpoint": checkpoint},
    )
    for hold in d.progress.open_holds():
        if hold.checkpoint == hypercare.HYPERCARE:
            withdraw(d, hold, actor=event.user, why=f"{event.cohort} restored to {final:g}% by {event.user}")
    hypercare.begin(d)  # the restored traffic earns its own hyper-care, from now
    settle(d)
