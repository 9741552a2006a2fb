"""Use cases for the approval manifest: emit it once the revision is signed off, check one against the store.

`emit_manifest` builds the manifest (packets.manifest) from the run's plan, sign-offs, holds and
the ledger entry where the last sign-off made the run ready, and appends `manifest_emitted` with
its hash, in the run's transaction. Refused, with a ledgered reason, while any sign-off role has
not approved the exact revision, or when the plan has no bundle.

`check_manifest` is read only: it compares a manifest's signers and ledger head with the run's
ledger, and finds the `manifest_emitted` entry carrying its hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers.commands import EmitManifest
from handlers.context import RunContext, ledger, plan_from_text
from handlers.deps import Deps
from handlers.flow import on_run
from handlers.outbox import post
from handlers.outcome import Outcome
from packets import messages as msg
from packets.authority import Refused
from packets.engine.progress import RunProgress
from packets.manifest import LedgerPoint, Link, build_manifest, dump, manifest_hash, signer_list
from packets.plan import Plan
from store.uow import Transaction

MANIFEST_EMITTED = "manifest_emitted"
# The entry the engine appends when the last sign-off role has approved: the approval point.
RUN_READY = "run_ready"


async def emit_manifest(cmd: EmitManifest, deps: Deps) -> Outcome:
    async def body(ctx: RunContext) -> Outcome:
        plan = ctx.plan
        if plan.bundle is None:
            raise Refused(
                f"Plan {plan.plan} has no bundle section: there is nothing to hand to a deployment queue."
            )
        signed = {s["role"] for s in signer_list(plan, ctx.progress.signoffs)}
        missing = [role for role in plan.authority.signoff if role not in signed]
        if missing:
            raise Refused(
                f"No manifest yet: revision {plan.revision[:12]} still waits for sign-off "
                f"by {', '.join(missing)}."
            )
        approval = await _approval_point(ctx.tx, ctx.run)
        if approval is None:
            raise Refused("No manifest yet: the ledger has no record of the run becoming ready.")
        earlier, supersedes = await _history(ctx.tx, ctx.progress)
        manifest = build_manifest(
            plan=plan,
            run=ctx.run,
            signoffs=ctx.progress.signoffs,
            holds=list(ctx.progress.holds.values()),
            approval=approval,
            earlier=earlier,
            supersedes=supersedes,
        )
        await ledger(
            ctx,
            actor=cmd.user,
            kind=MANIFEST_EMITTED,
            payload={
                "hash": manifest["hash"],
                "revision": plan.revision,
                "bundle_digest": manifest["bundle_digest"],
                "queue": manifest["queue"],
                "ledger_head": manifest["ledger_head"],
            },
        )
        shared = ""
        if cmd.share:
            # The manifest itself, as a file in the run's thread: what the deployment queue takes.
            document = msg.ManifestFile(
                filename=f"{ctx.run}-manifest-{manifest['hash'][:12]}.json",
                title=f"Approval manifest: {plan.title}",
                content=dump(manifest),
                hash=manifest["hash"],
                revision=plan.revision,
                queue=str(manifest["queue"]),
            )
            await post(ctx, to=plan.channel, message=document)
            shared = " It is shared in the war room as a file."
        return Outcome.done(
            f"Manifest {manifest['hash'][:12]} emitted for revision {plan.revision[:12]} "
            f"to queue {manifest['queue']}.{shared}",
            run=ctx.run,
            current_version=ctx.version,
            manifest=manifest,
        )

    return await on_run(cmd.run, user=cmd.user, action="manifest", deps=deps, body=body)


async def _approval_point(tx: Transaction, run: str) -> LedgerPoint | None:
    entries = await tx.ledger.entries(run)
    ready = [e for e in entries if e.kind == RUN_READY]
    if not ready:
        return None
    last = ready[-1]
    return LedgerPoint(seq=last.seq, hash=last.hash, at=last.at)


async def _history(tx: Transaction, progress: RunProgress) -> tuple[list[Plan], Link | None]:
    """The revisions this run's line superseded (oldest first) and the run it superseded, if any."""
    # Supersession links runs; until a run supersedes another its lineage is its own revision.
    del tx, progress
    return [], None


async def check_manifest(manifest: Mapping[str, Any], deps: Deps) -> list[str]:
    """Every way the manifest disagrees with the run's record in the store; empty when it matches."""
    run = str(manifest.get("run", ""))
    found: list[str] = []
    async with deps.uow.transaction(read_only=True) as tx:
        row = await tx.runs.get(run)
        if row is None:
            return [f"run: there is no run '{run}' in the database"]
        if row.plan_revision != manifest.get("revision"):
            found.append(
                f"revision: run {run} is on revision {row.plan_revision}, not {manifest.get('revision')}"
            )
        plan_row = await tx.plans.get(row.plan_revision)
        progress = RunProgress.from_json(row.progress["engine"])
        if plan_row is not None:
            plan = plan_from_text(plan_row.content, plan_row.source)
            signers = signer_list(plan, progress.signoffs)
            if signers != manifest.get("signers"):
                found.append(
                    f"signers: the ledger has {_people(signers)}, "
                    f"the manifest {_people(manifest.get('signers'))}"
                )
        entries = await tx.ledger.entries(run)
        head = manifest.get("ledger_head") or {}
        at_seq = next((e for e in entries if e.seq == head.get("seq")), None)
        if at_seq is None or at_seq.hash != head.get("hash") or at_seq.kind != RUN_READY:
            found.append(
                f"ledger_head: entry {head.get('seq')} of run {run} "
                f"is not the approval with hash {head.get('hash')}"
            )
        emitted = {
            e.payload.get("hash")
            for e in entries
            if e.kind == MANIFEST_EMITTED and isinstance(e.payload, dict)
        }
        if manifest_hash(manifest) not in emitted:
            found.append(f"ledger: no {MANIFEST_EMITTED} entry of run {run} carries this manifest's hash")
        verdict = await tx.ledger.verify(run)
        if not verdict.ok:
            found.append(f"ledger: {verdict.describe()}")
    return found


def _people(signers: Any) -> str:
    if not isinstance(signers, list):
        return repr(signers)
    return (
        ", ".join(
            f"{s.get('role')}: {s.get('user')} at {s.get('at')}" for s in signers if isinstance(s, dict)
        )
        or "nobody"
    )
