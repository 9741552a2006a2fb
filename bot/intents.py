"""From a parsed `/cutover` line to one typed command, and from a command to its use case.

`run_text` turns the parsed line into the command of `handlers.commands` it names, then
`dispatch` looks the command's type up in `USE_CASES`, the one table from command to use case
(the Slack listeners, buttons included, and the rehearsal go through it too).

Run commands are accepted only in their run's war-room channel: the run is found from the
channel, never from anything the person typed. Typed times stay as typed (`23:40`, `+30m`): the
use case resolves them against the plan window inside the run's one transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

from bot.command_text import USAGE, Parsed
from handlers import (
    adoption,
    delegates,
    evidence,
    gate_checks,
    holds,
    manifest,
    resequence,
    restores,
    rollbacks,
    runs,
    status,
    supersede,
)
from handlers.commands import (
    Acknowledge,
    AdoptPacket,
    Advance,
    ChangeDelegate,
    ChangeWindow,
    CheckGates,
    Command,
    EmitManifest,
    EngineIntent,
    ExportEvidence,
    Move,
    OpenHold,
    OpenRun,
    RejectPacket,
    ReleaseHold,
    ReportDone,
    ReportLate,
    RequestRollback,
    RestoreCohort,
    Rollback,
    ShowLedger,
    ShowPacket,
    ShowStatus,
    SignOff,
    StatusFor,
    Supersede,
    WithdrawRelease,
)
from handlers.deps import Deps
from handlers.outcome import Outcome
from packets.redact import redact

HELP = "\n".join(["*/cutover* subcommands:", *(f"• `{line}`" for line in USAGE.values())])

UseCase = Callable[[Any, Deps], Awaitable[Outcome]]

# Command type -> use case: the one place a command meets the code that carries it out.
USE_CASES: dict[type[Any], UseCase] = {
    OpenRun: runs.open_run,
    Supersede: supersede.supersede,
    SignOff: runs.sign_off,
    EngineIntent: runs.ask_engine,
    Rollback: runs.ask_engine,
    RequestRollback: rollbacks.request_rollback,
    RestoreCohort: restores.restore_cohort,
    ReportDone: resequence.report_done,
    ReportLate: resequence.report_late,
    ChangeWindow: resequence.change_window,
    ChangeDelegate: delegates.change_delegate,
    OpenHold: holds.open_hold,
    ReleaseHold: holds.release_hold,
    WithdrawRelease: holds.withdraw_release,
    AdoptPacket: adoption.adopt_packet,
    RejectPacket: adoption.reject_packet,
    Acknowledge: adoption.acknowledge,
    CheckGates: gate_checks.check_gates,
    Advance: gate_checks.advance,
    ExportEvidence: evidence.export_evidence,
    EmitManifest: manifest.emit_manifest,
    StatusFor: lambda cmd, deps: status.status_for_user(cmd.user, deps),
    ShowStatus: lambda cmd, deps: status.run_status(cmd.run, deps),
    ShowPacket: lambda cmd, deps: status.packet_view(cmd.run, deps, version=cmd.version),
    ShowLedger: lambda cmd, deps: status.ledger_tail(cmd.run, cmd.count, deps),
}


async def dispatch(command: Command, deps: Deps) -> Outcome:
    """Carry out one typed command through its use case, its free text redacted on the way in."""
    return await USE_CASES[type(command)](_redacted(command), deps)


# The fields of a command a person writes freely. Redacted here, once, for every surface (slash
# command, button, App Home, rehearsal); everything else in a command is an id the bot checks.
_FREE_TEXT = ("reason", "note")


def _redacted(command: Command) -> Command:
    found = {f: redact(v) for f in _FREE_TEXT if isinstance(v := getattr(command, f, None), str)}
    # Every command is a dataclass; the union of them is too wide for replace() to type-check.
    return cast(Command, replace(cast(Any, command), **found)) if found else command


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
        return await dispatch(OpenRun(plan_text=text, source=source, channel=channel, user=user), deps)
    if name == "status" and channel.startswith("D"):
        return await dispatch(StatusFor(user=user), deps)
    if name in ("evidence", "ledger", "manifest"):
        record = await status.record_run(channel, parsed.run, deps)
        if record is None:
            return Outcome.refused(
                f"No run '{parsed.run}' in this channel."
                if parsed.run is not None
                else "No cutover run in this channel yet. Start one with `/cutover open PLAN`."
            )
        command = await run_command(parsed, run=record, user=user, deps=deps)
        assert command is not None
        return await dispatch(command, deps)
    run = await status.run_in_channel(channel, deps)
    if run is None:
        return Outcome.refused("No active cutover run in this channel. Start one with `/cutover open PLAN`.")
    if name == "supersede":
        assert parsed.plan is not None
        found = plans.read(parsed.plan)
        # A missing plan is refused by the use case, so the refusal lands on the run's ledger.
        newer: str | None = found[0] if found is not None else None
        source = found[1] if found is not None else parsed.plan
        return await dispatch(
            Supersede(run=run, user=user, plan_text=newer, source=source, reason=parsed.reason), deps
        )
    command = await run_command(parsed, run=run, user=user, deps=deps)
    if command is None:
        return Outcome.refused(f"'{name}' is not something I can do yet.", run=run)
    return await dispatch(command, deps)


_MOVES = {str(move): move for move in Move}


async def run_command(parsed: Parsed, *, run: str, user: str, deps: Deps) -> Command | None:
    """The typed command a parsed line names on `run`; None for a subcommand that has none."""
    name = parsed.name
    reason = parsed.reason
    if name in _MOVES:
        return EngineIntent(run=run, user=user, move=_MOVES[name], reason=reason)
    if name == "status":
        return ShowStatus(run=run)
    if name == "packet":
        return ShowPacket(run=run, version=parsed.version)
    if name == "ledger":
        return ShowLedger(run=run, count=parsed.count or 10)
    if name == "evidence":
        return ExportEvidence(run=run, user=user)
    if name == "manifest":
        return EmitManifest(run=run, user=user, share=True)
    if name == "signoff":
        revision = await status.run_revision(run, deps)
        return SignOff(run=run, user=user, revision=revision, role=parsed.role)
    if name == "done":
        assert parsed.checkpoint is not None
        return ReportDone(run=run, user=user, checkpoint=parsed.checkpoint)
    if name == "late":
        assert parsed.checkpoint is not None and parsed.until is not None
        return ReportLate(run=run, user=user, checkpoint=parsed.checkpoint, until=parsed.until, reason=reason)
    if name == "window":
        assert parsed.checkpoint is not None and parsed.window is not None
        opens, closes = parsed.window
        return ChangeWindow(
            run=run, user=user, checkpoint=parsed.checkpoint, not_before=opens, not_after=closes
        )
    if name == "delegate":
        assert parsed.role is not None and parsed.user is not None
        return ChangeDelegate(run=run, user=user, role=parsed.role, to_user=parsed.user)
    if name == "hold":
        return OpenHold(run=run, user=user, reason=reason)
    if name == "release":
        assert parsed.checkpoint is not None
        return ReleaseHold(run=run, user=user, hold=parsed.checkpoint, note=reason)
    if name == "unrelease":
        assert parsed.checkpoint is not None
        return WithdrawRelease(run=run, user=user, hold=parsed.checkpoint)
    if name == "rollback":
        scope: Literal["cohort", "all"] = "all" if parsed.scope == "all" else "cohort"
        return Rollback(run=run, user=user, scope=scope, reason=reason)
    if name == "restore":
        return RestoreCohort(run=run, user=user, cohort=parsed.extra["cohort"])
    if name == "adopt":
        return AdoptPacket(run=run, user=user, version=parsed.version)
    if name == "reject":
        return RejectPacket(run=run, user=user, version=parsed.version, reason=reason, facts=parsed.facts)
    if name == "ack":
        return Acknowledge(run=run, user=user, version=parsed.version)
    return None
