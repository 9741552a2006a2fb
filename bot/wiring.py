"""The one place that chooses concrete classes: settings in, a running bot out.

    bot = await build(Settings())        # inside the running event loop
    await bot.start()                    # jobs from the store, start-up ticks, outbox loop
    ... serve bot.web_app (HTTP) or bot.bolt (Socket Mode) ...
    await bot.stop()

What `build` puts together:

- one `aiohttp.ClientSession` for every outbound HTTP call (Slack Web API, Prometheus, the traffic
  webhook), created inside the running loop and closed by `stop()`;
- the `AsyncWebClient` on that session, `base_url` from SLACK_API_URL (Slack, GovSlack or a test
  stand-in), with `retry_handlers=[]`: the outbox dispatcher makes every retry decision, once;
- the database engine and `UnitOfWork`; an empty or older schema is migrated at start-up (the
  embedded SQLite default needs no separate step; with several PostgreSQL replicas run
  `cutover-bot db upgrade` before rolling them out, so they do not race to migrate);
- `Deps`, from `build_deps`, the one builder of `Deps` (serve, the rehearsal, the CLI, the tests
  and the benchmarks all call it; tests and benchmarks pass their fakes): the clock, telemetry per
  plan (`bot.telemetry.telemetry_for`, relative telemetry paths resolved against the plans
  directory), the actuator per plan (`bot.actuators.actuator_for`), and `on_change`, which wakes
  the dispatcher and re-derives that run's scheduler jobs;
- the dispatcher over the store's outbox (`bot.outbox_port.StoreOutbox`, which also finds the
  message a `packet_superseded` notice updates), paced toward Slack by the `slack_pace` table
  (`bot.pace.StorePace`), so that every replica keeps under one rate per Web API method;
- the Bolt `AsyncApp` with every listener (`bot.app.build_app`), the aiohttp web app
  (`bot.server.build_web_app`, with `POST /alertmanager` from `bot.alertmanager`) and the
  scheduler (`bot.scheduler.Scheduler`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import actuators, alertmanager, listeners, metrics, telemetry
from bot.app import build_app
from bot.clock import SystemClock
from bot.dispatcher import Dispatcher, DrainReport, RetryPolicy
from bot.intake import Intake, default_replica_id
from bot.outbox_port import StoreOutbox
from bot.pace import StorePace
from bot.scheduler import Scheduler
from bot.server import bolt_dispatch, build_web_app
from bot.settings import Settings
from bot.undelivered import Undelivered
from handlers import shifts
from handlers.alerts import AlertsOutcome, alert_fired
from handlers.commands import AlertFired
from handlers.deps import Deps
from handlers.ports import Actuator, Clock, Telemetry
from packets.plan import Plan
from store.db import current_revision, display_url, head_revision, make_engine, upgrade_engine
from store.outbox import OutboxState
from store.uow import UnitOfWork

# How long a stopping bot lets background answers (response_url, App Home) finish.
ANSWERS_GRACE_S = 2.0

log = logging.getLogger("cutover_bot.wiring")

# Seconds one Web API call may take before it counts as a network error (and is retried).
SLACK_TIMEOUT = 15

TelemetryFor = Callable[[Plan], Telemetry]
ActuatorFor = Callable[[Plan], Actuator]


def _nothing_to_wake(_run: str) -> None:
    return None


def _no_outside_world(plan: Plan) -> Any:
    raise RuntimeError(f"plan {plan.plan}: this Deps was built without telemetry or an actuator")


def build_deps(
    *,
    uow: UnitOfWork,
    clock: Clock | None = None,
    session: aiohttp.ClientSession | None = None,
    plans_dir: Path | None = None,
    telemetry_for: TelemetryFor | None = None,
    actuator_for: ActuatorFor | None = None,
    on_change: Callable[[str], None] | None = None,
    drain_shifts: bool = False,
) -> Deps:
    """The one builder of `Deps`.

    Unless given, the clock is the system clock, and with an HTTP `session` telemetry and the
    actuator are the ones each plan names (relative telemetry paths resolved against
    `plans_dir`). Without a session and without `telemetry_for` / `actuator_for`, reaching for the
    outside world raises: a store-only caller (evidence export) must not touch it by accident."""
    if telemetry_for is None:
        if session is not None:
            base_dir = plans_dir

            def telemetry_for(plan: Plan) -> Telemetry:
                return telemetry.telemetry_for(plan, session=session, base_dir=base_dir)

        else:
            telemetry_for = _no_outside_world
    if actuator_for is None:
        if session is not None:

            def actuator_for(plan: Plan) -> Actuator:
                return actuators.actuator_for(plan, session=session)

        else:
            actuator_for = _no_outside_world
    return Deps(
        uow=uow,
        clock=clock or SystemClock(),
        telemetry_for=telemetry_for,
        actuator_for=actuator_for,
        on_change=on_change or _nothing_to_wake,
        drain_shifts=drain_shifts,
    )


@dataclass
class Bot:
    settings: Settings
    clock: Clock
    session: aiohttp.ClientSession
    client: AsyncWebClient
    uow: UnitOfWork
    deps: Deps
    outbox: StoreOutbox
    dispatcher: Dispatcher
    bolt: AsyncApp
    web_app: web.Application
    scheduler: Scheduler
    plans_dir: Path
    intake: Intake
    _intake_stop: asyncio.Event = field(default_factory=asyncio.Event)
    _intake_loop: asyncio.Task[None] | None = None

    async def start(self, *, dispatch_loop: bool = True, startup_ticks: bool = True) -> None:
        """Derive the scheduler's jobs from the store and start ticking and sending.

        `dispatch_loop=False` leaves the outbox to `drain()` (tests drain deterministically)."""
        try:
            taken = await self.outbox.take_back(now=self.clock.now())
            if taken:
                log.info("took back %s outbox rows an earlier life of this replica had claimed", taken)
        except Exception:
            log.exception("could not take back this replica's outbox rows; their leases will pass")
        await self.scheduler.start(dispatch_loop=dispatch_loop, startup_ticks=startup_ticks)
        self._intake_loop = asyncio.create_task(self.intake.run_forever(self._intake_stop))

    async def stop(self) -> None:
        """Stop taking inbox rows (those in hand get the shutdown grace, then are released), stop
        the scheduler and the outbox loop, then close the HTTP session and the engine."""
        self._intake_stop.set()
        await self.intake.stop(grace=self.settings.cutover_shutdown_grace)
        if self._intake_loop is not None:
            await asyncio.gather(self._intake_loop, return_exceptions=True)
        await self.scheduler.stop()
        # Answers in flight get a moment, not the inbox's grace: the stop must stay bounded.
        await listeners.settle_answers(timeout=ANSWERS_GRACE_S)
        await self.session.close()
        await self.uow.dispose()

    async def drain(self) -> DrainReport:
        """Send every traffic shift, then every outbox row, that is due now (on the bot's clock)."""
        await shifts.drain(self.deps)
        return await self.dispatcher.drain(now_fn=self.clock.now)


def scrape_from_store(uow: UnitOfWork) -> Callable[[], Awaitable[None]]:
    """Set the queue gauges from the database at scrape time: every replica reports the truth
    (the outbox pending while Slack is down, the inbox depth), whoever holds the rows."""

    async def scrape() -> None:
        try:
            async with uow.transaction(read_only=True) as tx:
                counts = await tx.outbox.counts()
                oldest = await tx.outbox.oldest_unfinished()
                depth = await tx.inbox.depth()
        except Exception:
            log.warning("metrics: the database does not answer; queue gauges keep their last values")
            return
        now = datetime.now(UTC)
        metrics.OUTBOX_PENDING.set(counts[OutboxState.PENDING] + counts[OutboxState.SENDING])
        metrics.OUTBOX_OLDEST_PENDING.set(0 if oldest is None else max(0.0, (now - oldest).total_seconds()))
        metrics.INBOX_DEPTH.set(depth.waiting)
        metrics.INBOX_OLDEST.set(
            0 if depth.oldest is None else max(0.0, (now - depth.oldest).total_seconds())
        )

    return scrape


def health_check(uow: UnitOfWork, database_url: str) -> Callable[[], Awaitable[bool]]:
    """What /healthz reports: the database answers a read (taken like any other read)."""

    async def healthy() -> bool:
        try:
            async with uow.transaction(read_only=True) as tx:
                await tx.runs.get("healthz")
        except Exception:
            log.warning("health check: the database at %s does not answer", display_url(database_url))
            return False
        return True

    return healthy


async def migrate(uow: UnitOfWork) -> None:
    """Bring an empty or older schema to head; a database at head is left alone."""
    head = head_revision()
    current = await current_revision(uow.engine)
    if current != head:
        log.info("database schema at %s, migrating to %s", current or "nothing", head)
        await upgrade_engine(uow.engine)


async def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    telemetry_for: TelemetryFor | None = None,
    actuator_for: ActuatorFor | None = None,
    retry_policy: RetryPolicy | None = None,
    drain_shifts: bool = False,
) -> Bot:
    """Build the whole bot inside the running event loop. Nothing is started yet."""
    clock = clock or SystemClock()
    plans_dir = Path(settings.cutover_plans_dir).expanduser().resolve()
    session = aiohttp.ClientSession()
    try:
        uow = UnitOfWork(make_engine(settings.database_url))
        try:
            await migrate(uow)
        except BaseException:
            await uow.dispose()
            raise
    except BaseException:
        await session.close()
        raise

    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value() or None,
        base_url=settings.api_url,
        session=session,
        timeout=SLACK_TIMEOUT,
        retry_handlers=[],
    )
    undelivered = Undelivered()
    replica = settings.cutover_replica_id or default_replica_id()
    outbox = StoreOutbox(uow, sender=replica)
    dispatcher = Dispatcher(
        client=client,
        outbox=outbox,
        concurrency=settings.dispatch_concurrency,
        policy=retry_policy,
        find_target=outbox.find_target,
        find_thread=outbox.find_thread,
        rates=settings.rates(),
        on_failed=undelivered.failed,
        pace=StorePace(uow),
    )
    scheduler: Scheduler | None = None

    def on_change(run: str) -> None:
        dispatcher.nudge()
        if scheduler is not None:
            scheduler.nudge_shifts()
            scheduler.refresh_soon(run)

    deps = build_deps(
        uow=uow,
        clock=clock,
        session=session,
        plans_dir=plans_dir,
        telemetry_for=telemetry_for,
        actuator_for=actuator_for,
        on_change=on_change,
        drain_shifts=drain_shifts,
    )
    scheduler = Scheduler(deps=deps, dispatcher=dispatcher)
    signing_secret = settings.slack_signing_secret.get_secret_value()
    bolt = build_app(
        client=client, signing_secret=signing_secret, deps=deps, plans_dir=plans_dir, undelivered=undelivered
    )
    intake = Intake(
        uow=uow,
        dispatch=bolt_dispatch(bolt),
        signing_secret=signing_secret,
        replica=replica,
        lease=timedelta(seconds=settings.cutover_inbox_lease),
        deadline=settings.cutover_ack_deadline,
    )

    async def count_alert(alert: AlertFired) -> AlertsOutcome:
        return await alert_fired(alert, deps)

    web_app = build_web_app(
        bolt,
        signing_secret=signing_secret,
        health=health_check(uow, settings.database_url),
        intake=intake if signing_secret.strip() else None,
        scrape=scrape_from_store(uow),
        alertmanager=alertmanager.route(
            token=settings.cutover_alertmanager_token.get_secret_value(), count=count_alert
        ),
    )
    return Bot(
        settings=settings,
        clock=clock,
        session=session,
        client=client,
        uow=uow,
        deps=deps,
        outbox=outbox,
        dispatcher=dispatcher,
        bolt=bolt,
        web_app=web_app,
        scheduler=scheduler,
        plans_dir=plans_dir,
        intake=intake,
    )
