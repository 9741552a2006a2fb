"""The whole cutover without Slack: a simulated clock, SQLite, simulated telemetry, scripted people.

Everything goes through the same use cases as Slack (bot.intents for typed commands, the handlers
for buttons), and every outbox row is rendered with the same templates and printed with where it
would go. Checkpoints that wait only for their owner are reported done by the acting owner at
their planned end (or at the time reported late), unless the script says `done` itself.

The rehearsal ends when the run ends: completed (after hyper-care, when the plan declares it),
rolled back or aborted. The clock steps by the plan's gate interval during the stages and by the
cadence step in force during hyper-care (`handlers.gate_checks.next_interval`), so three days of
hyper-care take a few hundred ticks. A run still going a day past the window end (plus the
plan's hyper-care) is a failed rehearsal, not a hang.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markdown import Markdown

from bot import messages as M
from bot.actuators import LogActuator
from bot.clock import SimulatedClock
from bot.command_text import Usage, parse
from bot.intents import PlanSource, dispatch, run_text
from bot.render import RenderError, render
from bot.telemetry.simulated import SimulatedTelemetry
from bot.threads import placement
from bot.wiring import build_deps
from handlers import evidence, gate_checks, manifest, status
from handlers.commands import (
    CheckGates,
    EmitManifest,
    OpenRun,
    ReleaseHold,
    ReportDone,
)
from handlers.context import load
from handlers.deps import Deps
from handlers.outcome import Outcome
from packets.engine.progress import TERMINAL, CheckpointState, RunProgress, RunState
from packets.manifest import differences
from packets.plan import Plan, PlanInvalid, RehearsalAction
from packets.plan_load import load_plan
from packets.redact import redact
from packets.witness import heads_to_post
from store.db import make_engine, upgrade
from store.uow import UnitOfWork

# How far past the window end (and the plan's hyper-care) a rehearsal may run before it is called a failure.
_OVERRUN = timedelta(hours=24)
# How often the progress line is printed during the stages and during hyper-care.
_REPORT_EVERY = timedelta(minutes=30)
_REPORT_EVERY_IN_HYPERCARE = timedelta(hours=6)


@dataclass
class Record:
    """What the --report file says; filled as the rehearsal goes."""

    notices: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Rehearsal:
    plan: Plan
    plan_text: str
    source: str
    deps: Deps
    clock: SimulatedClock
    console: Console
    speed: float
    interactive: bool
    ask: Callable[[str], str] = input
    record: Record = field(default_factory=Record)
    run: str = ""
    # The approval manifest emitted when a bundle run became ready, and what verifying it found.
    manifest: dict[str, Any] | None = None
    # Where `/cutover open` and `/cutover supersede` find plans by name: the plan file's folder.
    plans_dir: Path = Path(".")
    # Runs this rehearsal superseded, oldest first: the report keeps their refusals and chains.
    superseded: list[str] = field(default_factory=list)
    _sent: int = 0
    _asked: set[str] = field(default_factory=set)

    # -- printing ---------------------------------------------------------------------------------

    def stamp(self, at: datetime | None = None) -> str:
        value = (at or self.clock.now()).astimezone(self.plan.window.start.tzinfo)
        offset = value - self.plan.window.start
        sign = "+" if offset >= timedelta(0) else "-"
        minutes = int(abs(offset).total_seconds() // 60)
        return f"[dim]{value:%H:%M}[/dim] [dim]({sign}{minutes // 60}h{minutes % 60:02d})[/dim]"

    async def drain(self) -> None:
        """Render and 'send' every pending outbox row, in order, exactly as the dispatcher would."""
        now = self.clock.now()
        async with self.deps.uow.transaction() as tx:
            rows = await tx.outbox.claim(now=now, limit=10_000, lease=timedelta(minutes=5))
            for row in rows:
                self._sent += 1
                ts = f"{1_700_000_000 + self._sent}.000100"
                payload = dict(row.payload)
                self._print_message(row.kind, row.recipient, payload)
                version = _version_of(payload)
                self.record.notices.append(
                    {
                        "at": now.isoformat(),
                        "kind": row.kind,
                        "recipient": row.recipient,
                        "packet_version": version,
                    }
                )
                await tx.outbox.mark_sent(row.id, ts=ts, channel=row.recipient, at=now)
                if row.kind == "packet_posted" and version is not None and row.run_id:
                    await tx.packets.set_message(row.run_id, version, channel=row.recipient, ts=ts)

    def _print_message(self, kind: str, recipient: str, payload: dict[str, Any]) -> None:
        if kind == "plan_summary" and payload.get("live"):
            return  # the run's live card: what the rehearsal's own status line shows after each step
        where = f"#{recipient}" if recipient.startswith(("C", "G")) else f"DM @{recipient}"
        try:
            text = render(kind, payload).text
        except RenderError as exc:
            text = f"(could not render {kind}: {exc})"
        colour = {
            "hold_opened": "yellow",
            "gate_alert": "red",
            "traffic_shift": "cyan",
            "delta_dm": "magenta",
            "packet_posted": "green",
            "packet_proposed_line": "green",
        }.get(kind, "white")
        placed = placement(kind, recipient, payload, run=payload.get("run"))
        if payload.get("target_key"):
            where += " (updated in place)"
        elif placed.thread_key is not None and not placed.broadcast:
            where += " (in the run's thread)"
        self.console.print(f"{self.stamp()} [bold {colour}]→ {where}[/] {_escape(text)}")
        if kind == "packet_posted":
            self._print_packet(payload["packet"])
            self._print_forecast(payload.get("forecast"))
        if kind == "delta_dm" or (kind == "packet_proposed_line" and not payload.get("outcome")):
            # The DM's and the proposal's own change lines, as Slack shows them.
            for block in render(kind, payload).blocks:
                for line in str((block.get("text") or {}).get("text", "")).splitlines():
                    if line.startswith(M.BULLET.format(line="")):
                        self.console.print(f"        {_escape(line)}")

    def _print_packet(self, packet: dict[str, Any]) -> None:
        tz = self.plan.window.start.tzinfo
        for line in packet["timeline"]:
            start = datetime.fromisoformat(line["start"]).astimezone(tz)
            end = datetime.fromisoformat(line["end"]).astimezone(tz)
            flags = " ".join(f for f, on in (("protected", line["protected"]), ("held", line["held"])) if on)
            conflict = f" [red]conflict: {_escape(line['conflict'])}[/red]" if line.get("conflict") else ""
            self.console.print(
                f"        {start:%H:%M}-{end:%H:%M} {line['id']:<28} "
                f"{line['owner_role']}/{line['owner_user']:<8} [dim]{flags}[/dim]{conflict}"
            )

    async def print_forecast(self, *, full: bool) -> None:
        """Planned / actual / forecast: every checkpoint when asked, else the path and the end."""
        outcome = await status.forecast_view(self.run, self.deps)
        lines = outcome.message.splitlines()
        for line in lines if full else lines[-2:]:
            self.console.print(f"        [dim]{_escape(line)}[/dim]")

    def _print_forecast(self, forecast: dict[str, Any] | None) -> None:
        if not forecast:
            return
        tz = self.plan.window.start.tzinfo

        def hhmm(value: str | None) -> str:
            return datetime.fromisoformat(value).astimezone(tz).strftime("%H:%M") if value else "—"

        for c in forecast["checkpoints"]:
            actual = (
                f"{hhmm(c['actual_start'])}-{hhmm(c['actual_end'])}" if c["actual_start"] else "not started"
            )
            behind = f" [red]behind by {c['behind']} min[/red]" if c["behind"] > 0 else ""
            self.console.print(
                f"        {c['id']:<28} planned {hhmm(c['planned_start'])}-{hhmm(c['planned_end'])} "
                f"actual {actual} forecast {hhmm(c['start'])}-{hhmm(c['end'])}{behind}"
            )

    def say(self, who: str, action: str, outcome: Outcome) -> None:
        mark = "[green]✓[/green]" if outcome.ok else "[bold red]✗ refused[/bold red]"
        self.console.print(
            f"{self.stamp()} [bold]{who}[/bold] `{_escape(action)}` {mark} {_escape(outcome.message)}"
        )

    # -- acting ---------------------------------------------------------------------------------

    async def act(self, action: RehearsalAction) -> None:
        text = action.do.strip()
        normal = text.lower()
        if normal.startswith("sign off"):
            text = "signoff" + text[len("sign off") :]
        elif normal.startswith("acknowledge"):
            text = "ack" + text[len("acknowledge") :]
        try:
            parsed = parse(text)
        except Usage as usage:
            self.say(action.user, action.do, Outcome.refused(usage.line))
            return
        plans = PlanSource(self.plans_dir)
        outcome = await run_text(
            parsed, user=action.user, channel=self.plan.channel, deps=self.deps, plans=plans
        )
        self.say(action.user, action.do, outcome)
        if parsed.name == "supersede" and outcome.ok and outcome.run is not None and parsed.plan is not None:
            self.follow_successor(outcome.run, plans, parsed.plan)

    def follow_successor(self, run: str, plans: PlanSource, name: str) -> None:
        """After a supersession the rehearsal follows the newer revision's run (and its manifest)."""
        found = plans.read(name)
        assert found is not None  # the use case has just read it
        self.plan_text, self.source = found
        self.plan = load_plan(self.plan_text, source=self.source)
        self.superseded.append(self.run)
        self.run = run
        self.manifest = None

    async def auto_done(self) -> None:
        """Owners report their plain checkpoints done at the planned end (or the late time)."""
        async with self.deps.uow.transaction(read_only=True) as tx:
            ctx = await load(tx, self.run, self.clock.now())
        if ctx is None or ctx.progress.state != RunState.RUNNING:
            return
        for line in ctx.packet.timeline:
            state = ctx.progress.checkpoints[line.id]
            spec = self.plan.checkpoint(line.id)
            if state.state != CheckpointState.ACTIVE or spec.gates or spec.traffic or spec.hold:
                continue
            due = max(line.end, ctx.facts.late.get(line.id, line.end))
            if state.started_at is not None:
                due = max(due, state.started_at + spec.planned_length)
            if self.clock.now() >= due:
                owner = ctx.roster.acting_user(spec.owner)
                outcome = await dispatch(ReportDone(run=self.run, user=owner, checkpoint=line.id), self.deps)
                self.say(owner, f"done {line.id}", outcome)

    async def ask_holds(self) -> None:
        """--interactive: the person at the terminal may release each open hold, checked like a click."""
        async with self.deps.uow.transaction(read_only=True) as tx:
            ctx = await load(tx, self.run, self.clock.now())
        if ctx is None:
            return
        for hold in ctx.progress.open_holds():
            if hold.id in self._asked:
                continue
            self._asked.add(hold.id)
            self.console.print(
                f"{self.stamp()} [yellow]Hold {hold.id}[/yellow]: {_escape(hold.reason)} — release by "
                f"{', '.join(hold.release_by)} ({hold.mode})."
            )
            while True:
                user = self.ask("Who are you (Slack user id; empty to leave it to the script)? ").strip()
                if not user:
                    break
                if self.ask(f"Release {hold.id} as {user}? [y/N] ").strip().lower() not in ("y", "yes"):
                    break
                outcome = await dispatch(
                    ReleaseHold(run=self.run, user=user, hold=hold.id, version=ctx.version), self.deps
                )
                self.say(user, f"release {hold.id}", outcome)
                refreshed = await self._hold_open(hold.id)
                if not refreshed:
                    break

    async def _hold_open(self, hold_id: str) -> bool:
        async with self.deps.uow.transaction(read_only=True) as tx:
            ctx = await load(tx, self.run, self.clock.now())
        return ctx is not None and ctx.progress.holds[hold_id].is_open

    # -- the approval manifest ------------------------------------------------------------------

    async def emit_manifest_when_ready(self) -> None:
        """A bundle run's manifest is emitted once, as soon as every sign-off role has approved."""
        if self.plan.bundle is None or self.manifest is not None:
            return
        progress = await self.progress()
        if progress.state != RunState.READY:
            return
        async with self.deps.uow.transaction(read_only=True) as tx:
            ctx = await load(tx, self.run, self.clock.now())
        assert ctx is not None
        user = ctx.roster.acting_user(self.plan.authority.start_and_rollback[0])
        outcome = await manifest.emit_manifest(EmitManifest(run=self.run, user=user), self.deps)
        self.say(user, "manifest", outcome)
        if outcome.ok:
            self.manifest = outcome.data["manifest"]
        await self.drain()

    async def verify_manifest(self) -> list[str] | None:
        """What verifying the emitted manifest against the plan file and the ledger found."""
        if self.plan.bundle is None:
            return None
        if self.manifest is None:
            return ["no manifest was emitted: the revision was never signed off by every role"]
        found = differences(self.manifest, load_plan(self.plan_text, source=self.source))
        found += await manifest.check_manifest(self.manifest, self.deps)
        return found

    # -- the loop -------------------------------------------------------------------------------

    async def progress(self) -> RunProgress:
        async with self.deps.uow.transaction(read_only=True) as tx:
            ctx = await load(tx, self.run, self.clock.now())
        assert ctx is not None
        return ctx.progress

    async def go(self) -> str:
        window = self.plan.window
        self.clock.set(window.start)
        opener = self.plan.roles[self.plan.authority.adopt_packets[0]].primary
        opened = await dispatch(
            OpenRun(plan_text=self.plan_text, source=self.source, channel=self.plan.channel, user=opener),
            self.deps,
        )
        self.say(opener, f"open {self.plan.plan}", opened)
        if not opened.ok or opened.run is None:
            return "aborted"
        self.run = opened.run
        await self.drain()
        actions = sorted(
            enumerate(self.plan.rehearsal.actions if self.plan.rehearsal else []),
            key=lambda pair: (pair[1].at, pair[0]),
        )
        total = len(self.plan.checkpoints)
        last_progress = window.start
        last_state: RunState | None = None
        hypercare = self.plan.hypercare.length if self.plan.hypercare is not None else timedelta(0)
        while True:
            now = self.clock.now()
            while actions and window.start + actions[0][1].at <= now:
                await self.act(actions.pop(0)[1])
                await self.drain()
            if self.interactive:
                await self.ask_holds()
            await self.emit_manifest_when_ready()
            await self.auto_done()
            await dispatch(CheckGates(run=self.run), self.deps)
            await self.drain()
            progress = await self.progress()
            state = progress.state
            every = _REPORT_EVERY_IN_HYPERCARE if progress.in_hypercare else _REPORT_EVERY
            if now - last_progress >= every or state != last_state or state in TERMINAL:
                last_progress, last_state = now, state
                done = sum(1 for c in progress.checkpoints.values() if c.state == CheckpointState.DONE)
                bar = "█" * done + "░" * (total - done)
                traffic = sorted(progress.traffic.items())
                shares = ", ".join(f"{c} {p:g}%" for c, p in traffic) or "no traffic yet"
                self.console.print(
                    f"{self.stamp()} [bold]{bar}[/bold] {done}/{total} done · {state} · {shares}"
                )
                await self.print_forecast(full=state in TERMINAL)
            if state in TERMINAL and not actions:
                return str(state)
            step = gate_checks.next_interval(self.plan, progress, now) or self.plan.gate_policy.interval
            if now > window.end + hypercare + _OVERRUN:
                self.console.print(
                    f"{self.stamp()} [bold red]The run did not end within a day of the window end "
                    "(and its hyper-care).[/]"
                )
                return str(state)
            if self.speed > 0:
                await asyncio.sleep(step.total_seconds() / self.speed)
            self.clock.advance(step)

    async def wind_up(self, final_state: str) -> dict[str, Any]:
        await self.drain()
        exported = await evidence.build_evidence(self.run, self.deps)
        assert exported is not None
        earlier = [await evidence.build_evidence(run, self.deps) for run in self.superseded]
        earlier_refusals = [r for e in earlier if e is not None for r in e["refusals"]]
        earlier_verified = all(e is not None and e["ledger"]["verified"] for e in earlier)
        self.console.rule("Evidence packet")
        self.console.print(Markdown(evidence.to_markdown(exported)))
        ledger = exported["ledger"]
        verdict = (
            "[green]verified[/green]" if ledger["verified"] else f"[red]BROKEN: {ledger['problem']}[/red]"
        )
        self.console.print(f"Ledger check: {ledger['entries']} entries, {verdict}, head {ledger['head']}")
        manifest_problems = await self.verify_manifest()
        if manifest_problems is not None:
            shown = "[green]verified[/green]" if not manifest_problems else "[red]NOT verified[/red]"
            digest = self.manifest["hash"] if self.manifest is not None else "none"
            self.console.print(f"Manifest check: {digest}, {shown} against the plan file and the ledger")
            for problem in manifest_problems:
                self.console.print(f"  {_escape(problem)}")
        witness = []
        async with self.deps.uow.transaction(read_only=True) as tx:
            packets = await tx.packets.for_run(self.run)
            # The heads the served bot would have posted in the war room, at the simulated times
            # (a superseded run's chain too: it was witnessed while it ran).
            for run in [*self.superseded, self.run]:
                entries = await tx.ledger.entries(run)
                witness += heads_to_post(run, ((e.seq, e.at, e.hash) for e in entries))
        tz = self.plan.window.start.tzinfo
        adopted = {
            p["version"]: datetime.fromisoformat(p["adopted"]["at"]).astimezone(tz).isoformat()
            for p in exported["packets"]
            if p["adopted"]
        }
        return {
            "plan": self.plan.plan,
            "revision": self.plan.revision,
            "run": self.run,
            "final_state": final_state,
            "expected": self.plan.rehearsal.expect if self.plan.rehearsal else "completed",
            "packets": [
                {
                    "version": p.version,
                    "state": p.state,
                    "reason": p.reason,
                    "hash": p.hash,
                    "proposed_at": p.created_at.astimezone(tz).isoformat(),
                    **({"adopted_at": adopted[p.version]} if p.version in adopted else {}),
                    "timeline": [
                        {
                            "checkpoint": c["id"],
                            "owner_role": c["owner_role"],
                            "owner_user": c["owner_user"],
                            "start": c["start"],
                            "end": c["end"],
                            "protected": c["protected"],
                        }
                        for c in p.body["timeline"]
                    ],
                }
                for p in packets
            ],
            "actuals": [
                {"checkpoint": t["checkpoint"], "started_at": t["actual_start"], "ended_at": t["actual_end"]}
                for t in exported["timeline"]
            ],
            "notices": self.record.notices,
            "holds": [
                {
                    "id": h["id"],
                    "checkpoint": h["checkpoint"],
                    "opened_at": h["opened_at"],
                    "reason": h["reason"],
                    "releases": [
                        {"user": r["user"], "role": r["role"], "at": r["at"]} for r in h["releases"]
                    ],
                    "released_at": h["released_at"],
                }
                for h in exported["holds"]
            ],
            "shifts": [
                {"at": t["at"], "cohort": t["cohort"], "percent": t["percent"]} for t in exported["traffic"]
            ],
            "refusals": [
                {
                    "at": r["at"],
                    "user": r["actor"],
                    "action": r.get("action", ""),
                    "reason": r.get("reason", ""),
                }
                for r in [*earlier_refusals, *exported["refusals"]]
            ],
            "superseded": [
                {"run": old, "superseded_by": new}
                for old, new in zip(self.superseded, [*self.superseded[1:], self.run], strict=False)
            ],
            "ledger_verified": bool(ledger["verified"]) and earlier_verified,
            "witness": [head.payload() for head in witness],
            "manifest": None
            if manifest_problems is None
            else {
                "manifest": self.manifest,
                "verified": not manifest_problems,
                "problems": manifest_problems,
            },
            "evidence": exported,
        }


def _version_of(payload: dict[str, Any]) -> int | None:
    if isinstance(payload.get("packet"), dict):
        return int(payload["packet"]["version"])
    value = payload.get("version")
    return value if isinstance(value, int) else None


def _escape(text: str) -> str:
    return redact(text).replace("[", "\\[")


async def rehearse(
    path: Path,
    *,
    speed: float = 0,
    interactive: bool = False,
    report: Path | None = None,
    database_url: str | None = None,
    console: Console | None = None,
    ask: Callable[[str], str] = input,
) -> int:
    """Run the rehearsal of the plan at `path`; the exit status says whether it ended as expected."""
    console = console or Console(highlight=False, soft_wrap=True)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        console.print(f"{path}: cannot read: {exc.strerror}")
        return 2
    try:
        plan = load_plan(text, source=str(path))
    except PlanInvalid as invalid:
        for line in invalid.lines():
            console.print(line, markup=False)
        return 2
    workdir = None
    if not database_url:
        workdir = tempfile.mkdtemp(prefix="cutover-rehearsal-")
        database_url = f"sqlite+aiosqlite:///{os.path.join(workdir, 'rehearsal.db')}"
    await upgrade(database_url)
    engine = make_engine(database_url)
    clock = SimulatedClock(plan.window.start)
    telemetry = SimulatedTelemetry(plan)
    actuator = LogActuator()
    deps = build_deps(
        uow=UnitOfWork(engine),
        clock=clock,
        telemetry_for=lambda _p: telemetry,
        actuator_for=lambda _p: actuator,
        drain_shifts=True,
    )
    console.rule(f"Rehearsal: {plan.title}")
    console.print(
        f"plan {plan.plan} · revision {plan.revision} · window "
        f"{plan.window.start:%Y-%m-%d %H:%M}–{plan.window.end:%H:%M %z} · war room #{plan.channel}"
    )
    session = Rehearsal(
        plan=plan,
        plan_text=text,
        source=path.name,
        plans_dir=path.parent,
        deps=deps,
        clock=clock,
        console=console,
        speed=speed,
        interactive=interactive,
        ask=ask,
    )
    try:
        final = await session.go()
        result = await session.wind_up(final)
    finally:
        await engine.dispose()
    expected = result["expected"]
    if report is not None:
        report.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        console.print(f"Report written to {report}")
    manifest_ok = result["manifest"] is None or result["manifest"]["verified"]
    ok = final == expected and result["ledger_verified"] and manifest_ok
    colour = "green" if ok else "red"
    console.print(f"[bold {colour}]Rehearsal ended {final}; expected {expected}.[/]")
    return 0 if ok else 1
