"""From a parsed `/cutover` line to one use case: shared by the Slack listener and the rehearsal.

Run commands are accepted only in their run's war-room channel: the run is found from the
channel, never from anything the person typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bot.command_text import USAGE, Parsed, resolve_time
from handlers import adoption, delegates, evidence, holds, resequence, runs, status
from handlers.commands import (
    Abort,
    Acknowledge,
    AdoptPacket,
    ChangeDelegate,
    ChangeWindow,
    ExportEvidence,
    Freeze,
    OpenHold,
    OpenRun,
    Pause,
    RejectPacket,
    ReleaseHold,
    ReportDone,
    ReportLate,
    Resume,
    Rollback,
    SignOff,
    Start,
    Unfreeze,
)
from handlers.deps import Deps
from handlers.outcome import Outcome

HELP = "\n".join(["*/cutover* subcommands:", *(f"• `{line}`" for line in USAGE.values())])


@dataclass(frozen=True, slots=True)
class PlanSource:
    """Where `/cutover open NAME` finds NAME.yaml."""

    directory: Path

    def read(self, name: str) -> tuple[str, str] | None:
        path = (self.directory / f"{name}.yaml").resolve()
        if path.parent != self.directory.resolve() or not path.is_file():
            return None
        return path.read_text(encoding="utf-8"), path.name


async def run_text(parsed: Parsed, *, user: str, channel: str, deps: Deps, plans: PlanSource) -> Outcome:
    """Carry out one parsed `/cutover` line for `user` in `channel`."""
    name = parsed.name
    if name == "help":
        return Outcome.done(HELP)
    if name == "open":
        assert parsed.plan is not None
        found = plans.read(parsed.plan)
        if found is None:
            return Outcome.refused(f"No plan named '{parsed.plan}' in the plans directory.")
        text, source = found
        return await runs.open_run(OpenRun(plan_text=text, source=source, channel=channel, user=user), deps)
    if name == "status" and channel.startswith("D"):
        return await status.status_for_user(user, deps)
    run = await status.run_in_channel(channel, deps)
    if run is None:
        return Outcome.refused("No active cutover run in this channel. Start one with `/cutover open PLAN`.")
    return await _run_command(parsed, run=run, user=user, deps=deps)


async def _run_command(parsed: Parsed, *, run: str, user: str, deps: Deps) -> Outcome:
    name = parsed.name
    reason = parsed.reason
    if name == "status":
        return await status.run_status(run, deps)
    if name == "packet":
        return await status.packet_view(run, deps)
    if name == "ledger":
        return await status.ledger_tail(run, parsed.count or 10, deps)
    if name == "evidence":
        return await evidence.export_evidence(ExportEvidence(run=run, user=user), deps)
    if name == "start":
        return await runs.start(Start(run=run, user=user), deps)
    if name == "signoff":
        revision = await status.run_revision(run, deps)
        return await runs.sign_off(SignOff(run=run, user=user, revision=revision, role=parsed.role), deps)
    if name == "done":
        assert parsed.checkpoint is not None
        return await resequence.report_done(
            ReportDone(run=run, user=user, checkpoint=parsed.checkpoint), deps
        )
    if name == "late":
        assert parsed.checkpoint is not None and parsed.until is not None
        window_start = await status.window_start(run, deps)
        until = resolve_time(parsed.until, now=deps.clock.now(), tz_of=window_start)
        command = ReportLate(run=run, user=user, checkpoint=parsed.checkpoint, until=until, reason=reason)
        return await resequence.report_late(command, deps)
    if name == "window":
        assert parsed.checkpoint is not None and parsed.window is not None
        window_start = await status.window_start(run, deps)
        now = deps.clock.now()
        opens = resolve_time(parsed.window[0], now=now, tz_of=window_start)
        closes = resolve_time(parsed.window[1], now=opens, tz_of=window_start)
        change = ChangeWindow(
            run=run, user=user, checkpoint=parsed.checkpoint, not_before=opens, not_after=closes
        )
        return await resequence.change_window(change, deps)
    if name == "delegate":
        assert parsed.role is not None and parsed.user is not None
        switch = ChangeDelegate(run=run, user=user, role=parsed.role, to_user=parsed.user)
        return await delegates.change_delegate(switch, deps)
    if name == "hold":
        return await holds.open_hold(OpenHold(run=run, user=user, reason=reason), deps)
    if name == "release":
        assert parsed.checkpoint is not None
        return await holds.release_hold(ReleaseHold(run=run, user=user, hold=parsed.checkpoint), deps)
    if name == "pause":
        return await runs.pause(Pause(run=run, user=user, reason=reason), deps)
    if name == "resume":
        return await runs.resume(Resume(run=run, user=user), deps)
    if name == "freeze":
        return await runs.freeze(Freeze(run=run, user=user, reason=reason), deps)
    if name == "unfreeze":
        return await runs.unfreeze(Unfreeze(run=run, user=user), deps)
    if name == "rollback":
        scope: Literal["cohort", "all"] = "all" if parsed.scope == "all" else "cohort"
        return await runs.rollback(Rollback(run=run, user=user, scope=scope, reason=reason), deps)
    if name == "abort":
        return await runs.abort(Abort(run=run, user=user, reason=reason), deps)
    if name == "adopt":
        return await adoption.adopt_packet(AdoptPacket(run=run, user=user, version=parsed.version), deps)
    if name == "reject":
        rejection = RejectPacket(run=run, user=user, version=parsed.version, reason=reason)
        return await adoption.reject_packet(rejection, deps)
    if name == "ack":
        return await adoption.acknowledge(Acknowledge(run=run, user=user, version=parsed.version), deps)
    return Outcome.refused(f"'{name}' is not something I can do yet.", run=run)
