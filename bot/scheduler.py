"""Timed work in the bot's own event loop: gate ticks per run, the store resync, the outbox loop.

Jobs are derived from the store, never the other way round: APScheduler 3 (`AsyncIOScheduler`)
holds them in memory only, and they are rebuilt from the runs table at start-up, after every
change to a run (`refresh`, called through `Deps.on_change`), and by a periodic resync.

- `gate-tick:<run>`: for every active run, an `IntervalTrigger` at the plan's
  `gate_policy.interval`; for a run in hyper-care, at the interval of the cadence step in force
  (`handlers.gate_checks.next_interval`), re-derived after every tick so the cadence widens by
  itself. Ticks that come due at one moment (every run started together, a start-up, a discovery)
  are ticked together, `TICK_BATCH` runs per transaction (`handlers.gate_checks.check_gates_together`);
  a run a batch leaves out, or every run of a batch that failed, is ticked alone with
  `CheckGates(run)` (`handlers.gate_checks.check_gates`). A tick that raises is logged and counted
  (`cutover_gate_tick_errors_total`) and the run is simply tried at its next tick; the other runs
  never notice.
- `resync`: every `resync_every`, the job list is derived again from the store: jobs of runs that
  finished (or whose hyper-care ended) are removed, runs opened by another replica get theirs.
- `discover`: every `discover_every` (10 s, shorter than any gate interval a plan may sensibly
  name), one query for the active runs: a run this replica has no job for (opened by another
  replica, perhaps one that has died since) gets its job and one tick at once; jobs of runs that
  ended elsewhere go. So a dead replica costs its runs at most one discovery, not a resync.
- the outbox: `Dispatcher.run_forever` as one asyncio task, woken by `Deps.on_change`.
- traffic shifts: `handlers.shifts.drain` in a loop of its own, woken by `nudge_shifts` (from
  `Deps.on_change`) and every `dispatch_poll` seconds (an expired claim, an answer to feed again).

Misfires and restarts: every job has `coalesce=True`, `max_instances=1` and
`misfire_grace_time=None`. A tick is never run twice at once for one run; a tick that came due
while the loop was stalled runs once when the loop is back, however many intervals were missed
(coalesced), and however late (no grace limit: a late gate check is still worth having, and the
slot it records comes from the clock at run time, so it is a slot of *now*, never an old one).
Ticks missed while the process was down are not replayed either: the jobs are rebuilt from the
store, and on start-up one immediate tick per active run (`startup_ticks`) catches up, once. Gate
results are recorded under the unique key `(run, checkpoint, gate, slot)`, so a restart inside a
slot that was already checked records nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot import metrics
from bot.batches import Batches
from bot.dispatcher import Dispatcher
from bot.intents import dispatch
from handlers import shifts
from handlers.commands import CheckGates
from handlers.context import RunContext, load_many
from handlers.deps import Deps
from handlers.gate_checks import check_gates_together, next_interval
from handlers.outcome import Outcome
from store.outbox import UNFINISHED

log = logging.getLogger("cutover_bot.scheduler")

TICK_PREFIX = "gate-tick:"
RESYNC_JOB = "resync"
DISCOVER_JOB = "discover"
JOB_DEFAULTS: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
# Runs due at one moment are ticked together, this many per transaction
# (`handlers.gate_checks.check_gates_together`): a tick of hundreds of runs then costs a few
# statements per hundred runs, and no run's lock is held for long.
TICK_BATCH = 100

IntervalFor = Callable[[RunContext], timedelta | None]


def gate_interval(ctx: RunContext) -> timedelta | None:
    """How often the run is ticked now, or None when it needs no more ticks."""
    return next_interval(ctx.plan, ctx.progress, ctx.now)


def tick_job_id(run: str) -> str:
    return f"{TICK_PREFIX}{run}"


class Scheduler:
    def __init__(
        self,
        *,
        deps: Deps,
        dispatcher: Dispatcher | None = None,
        interval_for: IntervalFor = gate_interval,
        resync_every: timedelta = timedelta(minutes=5),
        discover_every: timedelta = timedelta(seconds=10),
        dispatch_poll: float = 2.0,
        stop_grace: float = 10.0,
    ) -> None:
        self._deps = deps
        self._dispatcher = dispatcher
        self._interval_for = interval_for
        self._resync_every = resync_every
        self._discover_every = discover_every
        self._dispatch_poll = dispatch_poll
        self._stop_grace = stop_grace
        self._aps = AsyncIOScheduler(timezone=UTC, job_defaults=dict(JOB_DEFAULTS))
        self._running = False
        self._stop_dispatch = asyncio.Event()
        self._dispatch_task: asyncio.Task[None] | None = None
        self._shift_task: asyncio.Task[None] | None = None
        self._shifts_due = asyncio.Event()
        self._startup_task: asyncio.Task[None] | None = None
        # Runs changed since their job was last derived; runs whose tick is due.
        self._refreshes: Batches[bool] = Batches(self._refresh_together, size=None, name="refresh")
        self._ticks: Batches[Outcome | None] = Batches(
            self._tick_together, size=TICK_BATCH, name="gate ticks"
        )
        # The asyncio tasks APScheduler runs our jobs in, while they run (stop() awaits them).
        self._inflight: set[asyncio.Task[object]] = set()
        # Tick jobs APScheduler has seen finish (counted after it frees the job's instance slot,
        # so a job may be run again from then on: what a test waits for before forcing a run).
        self.ticks_finished = 0
        self._aps.add_listener(self._job_finished, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    def _job_finished(self, event: JobExecutionEvent) -> None:
        if event.job_id.startswith(TICK_PREFIX):
            self.ticks_finished += 1

    # -- life cycle --------------------------------------------------------------------------

    async def start(self, *, dispatch_loop: bool = True, startup_ticks: bool = True) -> None:
        """Derive the jobs from the store, start ticking, and (by default) sending the outbox."""
        self._aps.start()
        self._running = True
        self._aps.add_job(
            self._resync_job,
            IntervalTrigger(seconds=self._resync_every.total_seconds()),
            id=RESYNC_JOB,
            name="derive jobs from the store",
            replace_existing=True,
        )
        self._aps.add_job(
            self._discover_job,
            IntervalTrigger(seconds=self._discover_every.total_seconds()),
            id=DISCOVER_JOB,
            name="find runs this replica does not tick",
            replace_existing=True,
        )
        runs = await self.resync()
        if startup_ticks:
            self._startup_task = asyncio.create_task(self._tick_each(runs), name="startup gate ticks")
        if dispatch_loop and self._dispatcher is not None:
            self._stop_dispatch.clear()
            self._dispatch_task = asyncio.create_task(
                self._dispatcher.run_forever(
                    self._stop_dispatch, now_fn=self._deps.clock.now, poll_interval=self._dispatch_poll
                ),
                name="outbox dispatcher",
            )
        if dispatch_loop:
            self._stop_dispatch.clear()
            self._shift_task = asyncio.create_task(self._send_shifts_forever(), name="traffic shifts")

    async def stop(self) -> None:
        """Stop ticking and sending. Ticks in flight are cancelled between two transactions (the
        one in progress ends first) and awaited, so nothing touches the database after this returns."""
        if not self._running:
            return
        self._running = False
        self._aps.shutdown(wait=False)
        # AsyncIOScheduler shuts down on the loop's next turn: no job starts after this.
        await asyncio.sleep(0)
        self._stop_dispatch.set()
        self._shifts_due.set()
        if self._dispatcher is not None:
            self._dispatcher.stop_soon()
        started: list[asyncio.Task[Any] | None] = [
            self._startup_task,
            self._ticks.task,
            self._refreshes.task,
        ]
        tasks = [t for t in [*started, *self._inflight] if t is not None]
        # Between transactions: cut off mid-statement, a tick could leave SQLite's write lock behind.
        await self._deps.uow.cancel_between_transactions(tasks)
        if self._dispatch_task is not None:
            # Let a drain in progress record what it sent; past the grace, cancel it (a row cut
            # off mid-send stays claimed until its lease ends, then goes again: at least once).
            done, _ = await asyncio.wait({self._dispatch_task}, timeout=self._stop_grace)
            if not done:
                self._dispatch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatch_task
            self._dispatch_task = None
        if self._shift_task is not None:
            # A shift being sent finishes and its answer is fed; past the grace its row stays
            # claimed until the lease ends and goes again under the same idempotency key.
            done, _ = await asyncio.wait({self._shift_task}, timeout=self._stop_grace)
            if not done:
                self._shift_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._shift_task
            self._shift_task = None
        self._refreshes.clear()
        self._ticks.clear()
        self._inflight.clear()

    async def startup_ticks(self) -> None:
        """Wait for the start-up ticks (one per active run) to finish."""
        if self._startup_task is not None:
            await asyncio.shield(self._startup_task)

    # -- jobs from the store -----------------------------------------------------------------

    async def resync(self) -> list[str]:
        """Derive every run's job from the store again; the runs that have one now."""
        active = await self._active_runs()
        metrics.ACTIVE_RUNS.set(len(active))
        jobs = await self.refresh_many(active)
        ticking = [run for run in active if run in jobs]
        for job in self.tick_jobs():
            if job.id.removeprefix(TICK_PREFIX) not in ticking:
                job.remove()
        with contextlib.suppress(Exception):
            async with self._deps.uow.transaction(read_only=True) as tx:
                counts = await tx.outbox.counts()
            metrics.OUTBOX_PENDING.set(sum(n for state, n in counts.items() if state in UNFINISHED))
        return ticking

    async def discover(self) -> list[str]:
        """Give every active run this replica has no tick job for its job and one tick now; the
        runs found. One query when nothing is new, so it can run far more often than `resync`."""
        active = await self._active_runs()
        known = {job.id.removeprefix(TICK_PREFIX) for job in self.tick_jobs()}
        for run in known - set(active):
            self._aps.remove_job(tick_job_id(run))
        unknown = [run for run in active if run not in known]
        jobs = await self.refresh_many(unknown) if unknown else set()
        found = [run for run in unknown if run in jobs]
        if found:
            log.info("ticking %s runs this replica did not know of: %s", len(found), ", ".join(found))
        await asyncio.gather(*(self.tick(run) for run in found))
        return found

    async def refresh(self, run: str) -> bool:
        """Add, re-time or remove the run's tick job after a change; True if it has one now."""
        return run in await self.refresh_many([run])

    async def refresh_many(self, runs: list[str]) -> set[str]:
        """`refresh` for several runs, read in one transaction; the runs that have a job now.

        An unchanged interval leaves the job alone, so a run that changes often is not pushed
        further and further from its next tick."""
        if not self._running:
            return set()
        async with self._deps.uow.transaction(read_only=True) as tx:
            contexts = await load_many(tx, runs, self._deps.clock.now())
        ticking: set[str] = set()
        for run in runs:
            ctx = contexts.get(run)
            interval = self._interval_for(ctx) if ctx is not None else None
            job = self._aps.get_job(tick_job_id(run))
            if interval is None or interval <= timedelta(0):
                if job is not None:
                    job.remove()
                    log.debug("gate ticks of run %s stopped", run)
                continue
            ticking.add(run)
            trigger = IntervalTrigger(seconds=interval.total_seconds(), timezone=UTC)
            if job is None:
                self._aps.add_job(
                    self._tick_job,
                    trigger,
                    args=[run],
                    id=tick_job_id(run),
                    name=f"gate tick {run}",
                    replace_existing=True,
                )
                log.debug("gate ticks of run %s every %s", run, interval)
            elif job.trigger.interval != interval:
                job.reschedule(trigger)
                log.debug("gate ticks of run %s now every %s", run, interval)
        return ticking

    def nudge_shifts(self) -> None:
        """A run changed: it may have queued a traffic shift, send it now rather than at the poll."""
        self._shifts_due.set()

    async def _send_shifts_forever(self) -> None:
        while not self._stop_dispatch.is_set():
            self._shifts_due.clear()
            try:
                await shifts.drain(self._deps)
            except Exception:
                log.exception("sending traffic shifts failed; the rest go at the next wake-up")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._shifts_due.wait(), timeout=self._dispatch_poll)

    def refresh_soon(self, run: str) -> None:
        """`refresh(run)` in the background (for `Deps.on_change`, which must not block). Runs
        changed at one moment (a batch of ticks) are refreshed together."""
        if not self._running:
            return
        self._refreshes.add(run)

    async def settle(self) -> None:
        """Wait until every background refresh has finished (tests, shutdown)."""
        while self._refreshes.task is not None and not self._refreshes.task.done():
            await asyncio.gather(self._refreshes.task, return_exceptions=True)

    def tick_jobs(self) -> list[Job]:
        return [job for job in self._aps.get_jobs() if job.id.startswith(TICK_PREFIX)]

    def job(self, job_id: str) -> Job | None:
        return self._aps.get_job(job_id)

    def wakeup(self) -> None:
        """Make APScheduler look at its jobs now (after a job's next run time was changed)."""
        self._aps.wakeup()

    # -- one tick ----------------------------------------------------------------------------

    async def tick(self, run: str) -> Outcome | None:
        """One gate check of one run; never raises (a failing run must not stop the others).
        Runs whose ticks come due at the same moment are ticked together."""
        return await asyncio.shield(self._ticks.add(run))

    async def _tick_together(self, runs: list[str]) -> dict[str, Outcome | None]:
        """Tick `runs` in one transaction; a run it leaves out, or all of them if it fails, alone."""
        outcomes: dict[str, Outcome | None] = {}
        try:
            outcomes.update(await check_gates_together(runs, self._deps))
        except Exception:
            log.warning("ticking %s runs together failed; ticking each alone", len(runs), exc_info=True)
            outcomes.clear()
        for outcome in outcomes.values():
            self._count(outcome)
        alone = [run for run in runs if run not in outcomes]
        outcomes.update(
            zip(alone, await asyncio.gather(*(self._tick_alone(run) for run in alone)), strict=True)
        )
        return outcomes

    async def _tick_alone(self, run: str) -> Outcome | None:
        try:
            outcome = await dispatch(CheckGates(run=run), self._deps)
        except Exception:
            metrics.GATE_TICK_ERRORS.inc()
            log.exception("gate tick of run %s failed; it is tried again at its next tick", run)
            return None
        self._count(outcome)
        return outcome

    @staticmethod
    def _count(outcome: Outcome | None) -> None:
        for result in outcome.data.get("results", ()) if outcome is not None else ():
            metrics.GATE_CHECKS.labels(outcome=str(result.get("outcome"))).inc()

    async def tick_all(self) -> dict[str, Outcome | None]:
        """One tick of every run that has a job, concurrently (runs do not wait for each other)."""
        runs = [job.id.removeprefix(TICK_PREFIX) for job in self.tick_jobs()]
        outcomes = await asyncio.gather(*(self.tick(run) for run in runs))
        return dict(zip(runs, outcomes, strict=True))

    async def _tick_job(self, run: str) -> None:
        with self._tracked():
            await self.tick(run)

    async def _tick_each(self, runs: list[str]) -> None:
        await asyncio.gather(*(self.tick(run) for run in runs))

    async def _discover_job(self) -> None:
        with self._tracked():
            try:
                await self.discover()
            except Exception:
                log.exception("looking for runs this replica does not tick failed; trying again later")

    async def _resync_job(self) -> None:
        with self._tracked():
            try:
                await self.resync()
            except Exception:
                log.exception("deriving scheduler jobs from the store failed; trying again later")

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _refresh_together(self, runs: list[str]) -> dict[str, bool]:
        try:
            jobs = await self.refresh_many(sorted(runs))
        except Exception:
            log.exception("re-deriving the gate ticks of %s runs failed", len(runs))
            return {}
        return {run: run in jobs for run in runs}

    async def _active_runs(self) -> list[str]:
        """Runs not yet ended (hyper-care included), oldest first."""
        async with self._deps.uow.transaction(read_only=True) as tx:
            return [row.run_id for row in await tx.runs.active()]
