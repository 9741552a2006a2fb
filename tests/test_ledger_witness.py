"""`cutover-bot ledger verify --witness FILE` catches what the chain alone cannot, on both databases.

Each tampering here leaves chains that verify on their own: a tail rewritten with its hashes and
head recomputed, a tail cut off with the head moved back, a whole run deleted, the tables
truncated. Only the heads Slack witnessed tell. `cutover-bot ledger witness RUN` reads them back
from the war room's history at the Slack stand-in.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.cli import main
from packets.witness import WitnessedHead, message_metadata, parse_lines, to_line
from store.ledger import chain_hash, entry_body
from store.tables import ledger
from store.uow import UnitOfWork
from tests.slack_standin import SlackStandin
from tests.test_ledger_verify import LENGTH, OTHER, RUN, MakeRun, fill, tamper


async def head_of(uow: UnitOfWork, run_id: str) -> WitnessedHead:
    async with uow.transaction(read_only=True) as tx:
        head = await tx.ledger.head(run_id)
    assert head is not None
    return WitnessedHead(run_id, head.seq, head.hash)


async def witness_file(uow: UnitOfWork, tmp_path: Path) -> Path:
    path = tmp_path / "witness.jsonl"
    heads = [await head_of(uow, RUN), await head_of(uow, OTHER)]
    path.write_text("".join(to_line(h) + "\n" for h in heads))
    return path


async def verify(*args: str) -> int:
    return await asyncio.to_thread(main, ["ledger", "verify", *args])


async def rewrite_the_tail_consistently(connection: AsyncConnection) -> None:
    query = select(ledger).where(ledger.c.run_id == RUN).order_by(ledger.c.seq)
    rows = (await connection.execute(query)).mappings().all()
    prev = rows[2]["prev_hash"]
    for row in rows[2:]:
        payload = '{"as":"release-authority","hold":"forged"}'
        body = entry_body(
            seq=row["seq"],
            at=row["at"],
            run_id=RUN,
            actor=row["actor"],
            kind=row["kind"],
            payload=json.loads(payload),
        )
        digest = chain_hash(prev, body)
        await connection.execute(
            text(
                "UPDATE ledger SET payload = :p, prev_hash = :prev, hash = :h WHERE run_id = :r AND seq = :s"
            ),
            {"p": payload, "prev": prev, "h": digest, "r": RUN, "s": row["seq"]},
        )
        prev = digest
    await connection.execute(
        text("UPDATE ledger_heads SET hash = :h WHERE run_id = :r"), {"h": prev, "r": RUN}
    )


async def cut_the_tail_and_move_the_head_back(connection: AsyncConnection) -> None:
    await connection.execute(text("DELETE FROM ledger WHERE run_id = :r AND seq > 3"), {"r": RUN})
    await connection.execute(
        text(
            "UPDATE ledger_heads SET seq = 3, hash = (SELECT hash FROM ledger WHERE run_id = :r AND seq = 3) "
            "WHERE run_id = :r"
        ),
        {"r": RUN},
    )


async def delete_the_run(connection: AsyncConnection) -> None:
    await connection.execute(text("DELETE FROM ledger WHERE run_id = :r"), {"r": RUN})
    await connection.execute(text("DELETE FROM ledger_heads WHERE run_id = :r"), {"r": RUN})


async def truncate_the_tables(connection: AsyncConnection) -> None:
    if connection.dialect.name == "postgresql":
        await connection.execute(text("TRUNCATE ledger, ledger_heads"))
    else:
        await connection.execute(text("DELETE FROM ledger"))
        await connection.execute(text("DELETE FROM ledger_heads"))


TAMPERING = [
    pytest.param(
        rewrite_the_tail_consistently,
        f"entry {LENGTH} has a different hash",
        True,
        id="consistent-tail-rewrite",
    ),
    pytest.param(
        cut_the_tail_and_move_the_head_back, "the chain ends at seq 3", True, id="tail-cut-head-moved-back"
    ),
    pytest.param(delete_the_run, "the run has no ledger entries", True, id="deleted-run"),
    pytest.param(truncate_the_tables, "the run has no ledger entries", False, id="truncated-tables"),
]


async def test_an_untouched_ledger_verifies_against_its_witness(
    uow: UnitOfWork, make_run: MakeRun, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await fill(uow, make_run)
    path = await witness_file(uow, tmp_path)
    # An older head witnessed before the chain grew is still in it.
    with path.open("a") as out:
        out.write(to_line(WitnessedHead(RUN, 2, (await _hash_at(uow, RUN, 2)))) + "\n")
    assert await verify("--witness", str(path), "--database-url", database_url) == 0
    assert "3 witnessed heads found in the ledger" in capsys.readouterr().out


async def _hash_at(uow: UnitOfWork, run_id: str, seq: int) -> str:
    async with uow.transaction(read_only=True) as tx:
        return next(e.hash for e in await tx.ledger.entries(run_id) if e.seq == seq)


@pytest.mark.parametrize(("change", "why", "other_intact"), TAMPERING)
async def test_tampering_that_verifies_on_its_own_is_caught_by_the_witness(
    uow: UnitOfWork,
    make_run: MakeRun,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: object,
    why: str,
    other_intact: bool,
) -> None:
    await fill(uow, make_run)
    path = await witness_file(uow, tmp_path)
    await tamper(uow, change)  # type: ignore[arg-type]
    assert await verify("--database-url", database_url) == 0  # the chains alone look fine
    capsys.readouterr()
    assert await verify("--witness", str(path), "--database-url", database_url) == 1
    err = capsys.readouterr().err
    assert f"run {RUN}: the witnessed head at seq {LENGTH} is not in the ledger: {why}" in err
    assert (f"run {OTHER}" not in err) is other_intact


async def test_a_witness_file_that_cannot_be_read_fails_saying_why(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "witness.jsonl"
    path.write_text('{"run": "r-1"}\n')
    assert await verify("--witness", str(path), "--database-url", database_url) == 1
    assert "line 1 has no seq" in capsys.readouterr().err


async def test_ledger_witness_prints_the_heads_posted_in_the_war_room(
    uow: UnitOfWork,
    make_run: MakeRun,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await fill(uow, make_run)
    channel = f"C0{RUN.upper()}"  # make_run's channel
    heads = [WitnessedHead(RUN, 2, await _hash_at(uow, RUN, 2)), await head_of(uow, RUN)]
    async with SlackStandin() as slack:
        client = AsyncWebClient(token=slack.token, base_url=slack.base_url)
        await client.chat_postMessage(
            channel=channel, text="run started", metadata=message_metadata(heads[0])
        )
        await client.chat_postMessage(channel=channel, text="chatter")
        other = WitnessedHead(OTHER, 1, "ab" * 32)
        await client.chat_postMessage(channel=channel, text="another run", metadata=message_metadata(other))
        for n in range(3):  # more than a page of history
            await client.chat_postMessage(channel=channel, text=f"chatter {n}")
        await client.chat_postMessage(channel=channel, text="run ended", metadata=message_metadata(heads[1]))
        monkeypatch.setenv("SLACK_BOT_TOKEN", slack.token)
        monkeypatch.setenv("SLACK_API_URL", slack.base_url)
        status = await asyncio.to_thread(
            main, ["ledger", "witness", RUN, "--page-size", "2", "--database-url", database_url]
        )
        history = slack.calls("conversations.history")
    assert status == 0
    assert parse_lines(capsys.readouterr().out) == heads
    assert history and all(str(c.body.get("include_all_metadata")).lower() in ("true", "1") for c in history)
    assert len(history) > 1
