"""Watching while traffic is live: the gates checked in every state once traffic has moved.

From the first traffic shift until the run ends, the gates of every traffic checkpoint that has
moved traffic, the gates the plan names in `watch:`, and those a started checkpoint names in its
own `watch:` are checked on the plan's interval whatever stops the run: running, held, paused,
frozen, in a manual checkpoint or in hyper-care. Traffic on the new path is what can hurt, and a
hold or a pause does not take it off.

When nothing with gates of its own is in flight, the readings come under the pseudo-checkpoint
`watch` and are kept in `RunProgress.watch_evidence`; a failure takes its gate's action on the
checkpoint in flight (or held), else on the last traffic checkpoint that moved, so a hold is a
hold of the line the war room is looking at and a cohort rollback takes back the last cohort
moved. Whatever the readings came under, a watched gate's last reading is also kept in
`watch_evidence`, so no traffic rises while a watched gate's last reading fails.
"""

from __future__ import annotations

from collections.abc import Callable

from packets.engine.progress import RunProgress
from packets.gates import NoDataPolicy, Verdict, verdict
from packets.plan import Plan

WATCH = "watch"


def traffic_moved(progress: RunProgress) -> bool:
    """Whether any traffic shift was ever commanded for the run."""
    return any(progress.traffic_history.values())


def moved_checkpoints(plan: Plan, progress: RunProgress) -> tuple[str, ...]:
    """The traffic checkpoints that have moved traffic (started: their shift was commanded)."""
    return tuple(
        c.id
        for c in plan.checkpoints
        if c.traffic is not None
        and (found := progress.checkpoints.get(c.id)) is not None
        and found.started_at is not None
    )


def watched(plan: Plan, progress: RunProgress) -> tuple[str, ...]:
    """The gates watched now: none before the first shift, then the moved checkpoints' gates,
    the plan's `watch:` and the started checkpoints' `watch:`, each once."""
    if not traffic_moved(progress) or progress.ended_at is not None:
        return ()
    names: list[str] = list(plan.watch)
    moved = set(moved_checkpoints(plan, progress))
    for checkpoint in plan.checkpoints:
        found = progress.checkpoints.get(checkpoint.id)
        if found is None or found.started_at is None:
            continue
        if checkpoint.id in moved:
            names.extend(checkpoint.gates)
        names.extend(checkpoint.watch)
    return tuple(g for g in dict.fromkeys(names) if g in plan.gates)


def failing_watched(
    progress: RunProgress, gates: tuple[str, ...], *, no_data: Callable[[str], NoDataPolicy]
) -> list[str]:
    """Watched gates whose last reading fails: traffic does not rise on them, however old."""
    failing = []
    for gate in gates:
        window = progress.watch_evidence.get(gate, ())
        if window and verdict(window[-1].outcome, no_data(gate)) is Verdict.FAIL:
            failing.append(gate)
    return failing
