"""`cutover-bot manifest RUN` and `cutover-bot manifest verify FILE --plan PLAN [--database URL]`."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from bot.cli import main
from handlers import commands as c
from handlers.runs import sign_off
from store.db import make_engine
from store.uow import UnitOfWork
from tests.bundle_fixtures import BundleWorld, bundle_plan_text
from tests.handler_fixtures import REL1, RISK1


def opened(database: Path, *, signers: tuple[str, ...]) -> str:
    """A bundle run in the database at `database`, signed off by `signers`; its run id."""

    async def go() -> str:
        uow = UnitOfWork(make_engine(f"sqlite+aiosqlite:///{database}"))
        try:
            world = BundleWorld(uow=uow)
            await world.open()
            for user in signers:
                outcome = await sign_off(
                    c.SignOff(run=world.run, user=user, revision=world.revision), world.deps
                )
                assert outcome.ok, outcome.message
            return world.run
        finally:
            await uow.dispose()

    return asyncio.run(go())


@pytest.fixture
def database(sqlite_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "cutover.db"
    shutil.copyfile(sqlite_template, path)
    return path


def url(database: Path) -> str:
    return f"sqlite+aiosqlite:///{database}"


def test_the_manifest_is_refused_with_exit_2_until_every_role_signed(
    database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = opened(database, signers=(REL1,))

    status = main(["manifest", run, "--database-url", url(database)])

    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert "still waits for sign-off by payments-risk" in err


def test_the_manifest_goes_to_stdout_as_json_and_verifies(
    database: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = opened(database, signers=(REL1, RISK1))
    assert main(["manifest", run, "--database-url", url(database)]) == 0
    out, _ = capsys.readouterr()
    manifest = json.loads(out)
    saved = tmp_path / "manifest.json"
    saved.write_text(out, encoding="utf-8")
    plan = tmp_path / "plan.yaml"
    plan.write_text(bundle_plan_text(), encoding="utf-8")

    status = main(["manifest", "verify", str(saved), "--plan", str(plan), "--database", url(database)])

    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert out == f"{saved}: manifest {manifest['hash'][:12]} verified against {plan} and the ledger\n"


def test_a_doctored_manifest_fails_verification_naming_what_differs(
    database: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = opened(database, signers=(REL1, RISK1))
    saved = tmp_path / "manifest.json"
    assert main(["manifest", run, "-o", str(saved), "--database-url", url(database)]) == 0
    capsys.readouterr()
    manifest = json.loads(saved.read_text(encoding="utf-8"))
    manifest["queue"] = "prod-deploy-west"
    saved.write_text(json.dumps(manifest), encoding="utf-8")
    plan = tmp_path / "plan.yaml"
    plan.write_text(bundle_plan_text(), encoding="utf-8")

    status = main(["manifest", "verify", str(saved), "--plan", str(plan), "--database", url(database)])

    out, err = capsys.readouterr()
    assert (status, out) == (1, "")
    fields = [line.removeprefix(f"{saved}: ").split(":")[0] for line in err.splitlines()]
    assert fields == ["hash", "queue", "ledger"]
