"""Whatever is typed after `/cutover`, the bot answers in words and changes nothing it should not.

Hypothesis generates the text: any unicode, very long lines (past the 2,000-character limit, up to
5,000), Slack's own markup (`<@U123|x>`, `<!channel>`, `<#C0BRIDGE|room>`, `<https://...|x>`),
SQL, shell and template injections, odd whitespace, and every known subcommand (and alias, in
any case) followed by garbage or by almost-valid arguments (the plan's checkpoint ids, hold ids,
versions, times, roles, mentions).

It is typed by people who hold no role in the plan, into the war room of a run that is running
with a proposed packet and an open hold, so that every state-changing command has something to
act on and must be refused. What must hold for every text:

- the listener's code path (`bot.command_text.parse`, then `bot.intents.run_text` on the real
  `Deps` of a bot built by `bot.wiring`, on SQLite) never raises;
- the answer the person would read has no traceback, no `File "..."` frame and no exception class
  name (unless the person typed it);
- the store is unchanged: the run row (state, progress, acting, lock_version, authoritative
  version), packets, holds, sign-offs, acknowledgements, gate results and acting changes are the
  same (every table but the ledger and the outbox, compared row for row through a read-only
  `sqlite3` connection of the test's own); the ledger gains one `refused` entry per refusal and
  nothing else (bar two refusals bot/intents.py answers without one, listed below); the outbox
  gains nothing, except the one row an `evidence` export posts to the room: anyone in the channel,
  role or not, may ask for the evidence summary, and it is posted in the war room.

10,000 examples go through that code path directly; 200 more go through the real served bot over
HTTP, signed like Slack (tests/bot_harness.py), where no request may get a 5xx, no ack and no
response_url post may carry a traceback, nothing may be logged as an error, and the store must
be unchanged in the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from bot.command_text import ALIASES, USAGE, Usage, parse
from bot.intents import PlanSource, run_text
from bot.wiring import Bot
from handlers.outcome import Outcome
from packets.redact import redact
from store.tables import metadata
from tests import signing
from tests.bot_harness import BRIDGE, SECRET, BotFactory, BotHarness, bot_world, serving, wait_until

REL1, ENG1, RISK1, SEC1 = "U0REL1", "U0ENG1", "U0RISK1", "U0SEC1"
# Not in any role of the bridge plan (nor of any plan in the plans directory).
STRANGERS = ["U0NOBODY", "U0STRANGER9", "W0GUEST42"]
FAST_EXAMPLES = 10_000
HTTP_EXAMPLES = 200

# -- what people type ---------------------------------------------------------------------------

INJECTIONS = [
    "'; DROP TABLE runs;--",
    "Robert'); DROP TABLE ledger;--",
    "1 OR 1=1",
    '" OR ""="',
    "{{7*7}}",
    "{{ config.items() }}",
    "{% for x in range(99) %}x{% endfor %}",
    "${7*7}",
    "#{7*7}",
    "$(rm -rf /)",
    "`rm -rf /`",
    "; cat /etc/passwd",
    "| nc 127.0.0.1 1",
    "../../../../etc/passwd",
    "%s%s%s%n%x",
    "<script>alert(1)</script>",
    "javascript:alert(1)",
    "\x00",
    "\u202eevil",
    "\ufeff",
    "*bold* _it_ ~strike~ `code` ```block```",
    "Traceback (most recent call last):",
    "__import__('os').system('id')",
]
MARKUP = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!subteam^S0123|@oncall>",
    "<#C0BRIDGE|cutover>",
    "<#C0WARROOM>",
    "<https://evil.example.com/x|click me>",
    "<mailto:a@b.example|a>",
    "<@U0REL1>",
    "<@U0REL2|rel2>",
    "<@W0GUEST42|guest>",
    "<@>",
    "<@U123|x>",
    "@U0REL2",
    "<@U0REL2|",
    "<>",
]
ALMOST = [
    "drain-queue",
    "schema-check",
    "go-decision",
    "canary",
    "DRAIN-QUEUE",
    "run/manual/1",
    "run/manual/5",
    "go-decision/plan/1",
    "plan:go-decision",
    "v1",
    "v2",
    "v3",
    "V2",
    "v0",
    "v999999",
    "v1234567",
    "2",
    "+25m",
    "+0m",
    "+2d",
    "+3d",
    "+1h30m",
    "+400d",
    "+99999999999d",
    "21:30",
    "23:59",
    "00:00",
    "24:00",
    "9:5",
    "21:30-22:00",
    "22:00-21:30",
    "00:00-00:00",
    "release-authority",
    "release-eng",
    "security",
    "dba",
    "payments-risk",
    "nobody-role",
    "cohort",
    "all",
    "bridge",
    "payments-tokenization",
    "../bridge",
    "bridge.yaml",
    "100",
    "101",
    "0",
    "-1",
    "1e9",
    "٣",
    "v٣",
    "２１:３０",
]
SEPARATORS = [" ", "  ", "\t", "\n", "\u00a0", "\u3000", "\u2003", " \r\n "]
SUBCOMMANDS = sorted({*USAGE, *ALIASES})
# Refusals that bot/intents.py answers before any use case runs, so without a `refused` entry
# (the architecture has every refusal in the ledger; these are not): a window that closes before
# it opens, `open` naming no plan here or a plan of another channel, `evidence`, `ledger` or `manifest`
# naming a run that is not this channel's, and `packet vN` naming a version the run does not have.
UNLEDGERED_REFUSALS = {("window", "The window must close after it opens.")}
STRANGER_REFUSED = "does not act for any role in this plan"
UNLEDGERED_OPEN = (
    "No plan named '",
    "Plan 'payments-tokenization-cutover' runs in <#C0WARROOM>, not here.",
    # A stranger may not open a run at all: refused before any run is looked at.
    "Only the people named in plan 'bridge''s roles",
)
# Every subcommand that would change the run, were it typed by someone allowed to.
STATE_CHANGING = {
    "start",
    "signoff",
    "done",
    "late",
    "window",
    "delegate",
    "hold",
    "release",
    "pause",
    "resume",
    "freeze",
    "unfreeze",
    "rollback",
    "adopt",
    "reject",
    "ack",
}


def _cased(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.upper(), word.title()])


mention = st.builds(
    lambda prefix, ident, label: f"<@{prefix}{ident}|{label}>",
    st.sampled_from(["U", "W", "B", "C", ""]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", max_size=24),
    st.text(max_size=20),
)
link = st.builds(
    lambda host, label: f"<https://{host}/x|{label}>",
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz.-", min_size=1, max_size=20),
    st.text(max_size=15),
)
word = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="ascii"), max_size=20),
    st.sampled_from(INJECTIONS),
    st.sampled_from(MARKUP),
    st.sampled_from(ALMOST),
    mention,
    link,
)
separator = st.sampled_from(SEPARATORS)


@st.composite
def subcommand_line(draw: st.DrawFn) -> str:
    """A known subcommand (or alias, in some case) and garbage or almost-valid arguments."""
    head = draw(st.sampled_from(SUBCOMMANDS).flatmap(_cased))
    parts = [head]
    for w in draw(st.lists(word, max_size=8)):
        parts += [draw(separator), w]
    lead = draw(st.sampled_from(["", "", " ", "\n", "\u00a0"]))
    return lead + "".join(parts)


# Per subcommand, arguments shaped like its usage line: mostly valid-looking, sometimes garbage.
def _mostly(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    # Not st.one_of(valid, word): one_of flattens `word`'s own branches and valid would be rare.
    return st.integers(0, 3).flatmap(lambda n: word if n == 0 else valid)


checkpoint = _mostly(
    st.sampled_from(
        [
            "drain-queue",
            "schema-check",
            "go-decision",
            "canary",
            "run",
            "nope",
            "DRAIN-QUEUE",
            "plan:go-decision",
            "manual:drain-queue",
            "go-decision/plan/1",
            "run/manual/5",
            "a" * 101,
        ]
    )
)
hhmm = st.sampled_from(["21:30", "00:00", "23:59", "9:05", "24:00", "21:3", "２１:３０"])
until = _mostly(
    st.one_of(
        hhmm,
        st.sampled_from(["+25m", "+0m", "+2d", "+3d", "+1h30m", "+400d", "+99999999999d", "+٣m", "+5", "+m"]),
    )
)
span = _mostly(st.builds("{}-{}".format, hhmm, hhmm))
role = _mostly(
    st.sampled_from(["release-authority", "release-eng", "security", "dba", "payments-risk", "no-such-role"])
)
version = _mostly(st.integers(-1, 10**7).map("v{}".format))
reason = st.lists(word, max_size=6).map(" ".join)
SHAPED = {
    "open": st.tuples(st.sampled_from(["bridge", "payments-tokenization", "nope", "../bridge"])),
    "done": st.tuples(checkpoint),
    "late": st.tuples(checkpoint, until, reason),
    "window": st.tuples(checkpoint, span),
    "delegate": st.tuples(role, st.one_of(mention, st.sampled_from(MARKUP))),
    "release": st.tuples(checkpoint),
    "rollback": st.tuples(st.sampled_from(["cohort", "all", "ALL", ""]), reason),
    "signoff": st.tuples(role),
    "adopt": st.tuples(version),
    "ack": st.tuples(version),
    "reject": st.tuples(version, reason),
    "ledger": st.tuples(st.one_of(st.integers(-5, 200).map(str), word)),
    "hold": st.tuples(reason),
    "pause": st.tuples(reason),
    "freeze": st.tuples(reason),
}
shaped_line = st.sampled_from(sorted(SHAPED)).flatmap(
    lambda name: st.tuples(_cased(name), SHAPED[name], separator).map(
        lambda t: t[2].join([t[0], *(a for a in t[1] if a)])
    )
)
very_long = st.builds(
    lambda head, chunk, times: (head + " " + chunk * times)[:5000],
    st.sampled_from(SUBCOMMANDS),
    st.one_of(st.text(min_size=1, max_size=40), st.sampled_from(INJECTIONS + MARKUP)),
    st.integers(min_value=1, max_value=2500),
)
slash_text = st.one_of(
    st.text(max_size=200),  # any unicode at all
    st.text(max_size=5000),
    subcommand_line(),
    shaped_line,
    very_long,
    st.lists(st.one_of(word, st.sampled_from(INJECTIONS)), max_size=12).map(" ".join),
)

# -- what must hold ----------------------------------------------------------------------------

_EXCEPTION_NAME = re.compile(r"\b[A-Z][A-Za-z0-9_]*(?:Error|Exception|Exit|Interrupt)\b")
_LEAKS = (
    "Traceback",
    'File "',
    "sqlalchemy",
    "sqlite3",
    "aiosqlite",
    "asyncpg",
    "pydantic",
    "site-packages",
    "Exception:",
)


def assert_clean(answer: str, typed: str) -> None:
    """No traceback, frame or exception class name in what the person reads (unless typed)."""
    for leak in _LEAKS:
        if leak not in typed:
            assert leak not in answer, f"{leak!r} in the answer to {typed!r}: {answer!r}"
    for name in _EXCEPTION_NAME.findall(answer):
        assert name in typed, f"exception name {name!r} in the answer to {typed!r}: {answer!r}"


def reply_text(outcome: Outcome) -> str:
    """The ephemeral answer exactly as bot/listeners.py words it."""
    text = outcome.message
    if not outcome.ok and outcome.current_version is not None and f"v{outcome.current_version}" not in text:
        text = f"{text} (current packet: v{outcome.current_version})"
    return redact(("" if outcome.ok else ":no_entry: ") + text)


# Every table but the ones that may grow (ledger, its head, the outbox): compared row for row.
WATCHED = [
    t.name for t in metadata.sorted_tables if t.name not in ("ledger", "ledger_heads", "outbox", "inbox")
]


@dataclass(frozen=True)
class Store:
    """What the database holds: every watched table whole, the outbox rows, the ledger's length."""

    tables: dict[str, list[tuple[Any, ...]]]
    outbox: list[tuple[Any, ...]]
    ledger_seq: int


class Observer:
    """Reads the bot's SQLite file with the standard library, read-only: an observer that shares
    no code with the store (and costs a millisecond a look, so it can look after every example)."""

    def __init__(self, bot: Bot, run: str) -> None:
        path = make_url(bot.settings.database_url).database
        self.run = run
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)

    def close(self) -> None:
        self._db.close()

    def read(self) -> Store:
        tables = {
            name: self._db.execute(f"SELECT * FROM {name} ORDER BY rowid").fetchall() for name in WATCHED
        }
        rows = self._db.execute("SELECT id, kind, recipient, state FROM outbox ORDER BY id").fetchall()
        (seq,) = self._db.execute(
            "SELECT coalesce(max(seq), 0) FROM ledger_heads WHERE run_id = ?", (self.run,)
        ).fetchone()
        return Store(tables=tables, outbox=rows, ledger_seq=int(seq))

    def ledger_since(self, seq: int) -> list[tuple[str, str]]:
        return self._db.execute(
            "SELECT kind, payload FROM ledger WHERE run_id = ? AND seq > ? ORDER BY seq", (self.run, seq)
        ).fetchall()

    def unchanged(self, before: Store, *, typed: str, evidence_allowed: bool) -> Store:
        """The store equals `before` but for one `refused` ledger entry (or an evidence export's
        row in the outbox); returns what it holds now."""
        after = self.read()
        for name, rows in before.tables.items():
            assert after.tables[name] == rows, f"table {name} changed after {typed!r}"
        assert after.outbox[: len(before.outbox)] == before.outbox, f"outbox rows changed after {typed!r}"
        added_rows = [row[1:] for row in after.outbox[len(before.outbox) :]]
        allowed = [("evidence", BRIDGE, "pending")] if evidence_allowed else []
        assert added_rows in ([], allowed), (typed, added_rows)
        if after.ledger_seq != before.ledger_seq:
            added = self.ledger_since(before.ledger_seq)
            assert [kind for kind, _ in added] == ["refused"], (typed, added)
        return after


# -- the world ---------------------------------------------------------------------------------


async def _as(bot: Bot, text: str, user: str) -> Outcome:
    return await run_text(
        parse(text), user=user, channel=BRIDGE, deps=bot.deps, plans=PlanSource(bot.plans_dir)
    )


async def a_run_with_something_to_act_on(bot: Bot, factory: BotFactory) -> str:
    """The bridge run, started, with v2 proposed and a manual hold open."""
    steps = [(ENG1, "open bridge"), (REL1, "signoff"), (RISK1, "signoff")]
    for user, text in steps:
        outcome = await _as(bot, text, user)
        assert outcome.ok, (text, outcome.message)
    factory.clock.advance(timedelta(minutes=5))
    for user, text in [
        (ENG1, "start"),
        (ENG1, "late drain-queue +25m pumps are slow"),
        (SEC1, "hold vendor on the phone"),
    ]:
        outcome = await _as(bot, text, user)
        assert outcome.ok, (text, outcome.message)
    async with bot.uow.transaction(read_only=True) as tx:
        row = await tx.runs.active_in_channel(BRIDGE)
    assert row is not None
    return row.run_id


@contextlib.contextmanager
def bot_on_own_loop(
    tmp_path: Path, sqlite_template: Path
) -> Iterator[tuple[asyncio.Runner, BotFactory, Bot]]:
    """A bot (built by bot.wiring, not served) on a loop of the test's own: hypothesis calls the
    example function synchronously, and each example runs on this one loop."""
    with asyncio.Runner() as loop:
        resources = contextlib.AsyncExitStack()
        try:
            factory = loop.run(resources.enter_async_context(bot_world(tmp_path, sqlite_template)))
            bot = loop.run(factory.build())
            yield loop, factory, bot
        finally:
            loop.run(resources.aclose())


FUZZ = settings(
    max_examples=FAST_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def test_no_slash_command_text_from_someone_without_a_role_raises_leaks_a_traceback_or_changes_state(
    tmp_path: Path,
    sqlite_template: Path,
) -> None:
    with bot_on_own_loop(tmp_path, sqlite_template) as (loop, factory, bot):
        run = loop.run(a_run_with_something_to_act_on(bot, factory))
        observer = Observer(bot, run)
        first = observer.read()
        seen: Counter[str] = Counter()
        unledgered: Counter[str] = Counter()
        last = [first]
        plans = PlanSource(bot.plans_dir)

        async def one(text: str, user: str) -> None:
            seen["examples"] += 1
            seen["long"] += len(text) > 2000
            try:
                parsed = parse(text)
            except Usage as usage:
                assert_clean(redact(usage.line), text)
                return
            outcome = await run_text(parsed, user=user, channel=BRIDGE, deps=bot.deps, plans=plans)
            assert_clean(reply_text(outcome), text)
            seen[f"{parsed.name} {'refused' if not outcome.ok else 'answered'}"] += 1
            before = last[0]
            last[0] = observer.unchanged(before, typed=text, evidence_allowed=parsed.name == "evidence")
            if not outcome.ok and last[0].ledger_seq == before.ledger_seq:
                unledgered[parsed.name] += 1
                # Someone in no role is ledgered once a minute (handlers.flow), answered always.
                assert (
                    (parsed.name, outcome.message) in UNLEDGERED_REFUSALS
                    or STRANGER_REFUSED in outcome.message
                    or (parsed.name == "open" and outcome.message.startswith(UNLEDGERED_OPEN))
                    # A run named outright that is not this channel's: no run to write it on.
                    or (
                        parsed.name in ("evidence", "ledger", "manifest")
                        and outcome.message.startswith("No run '")
                    )
                    # A read of a packet version the run does not have: nothing was attempted.
                    or (parsed.name == "packet" and " has no packet v" in outcome.message)
                ), (text, outcome.message)

        @FUZZ
        @given(text=slash_text, user=st.sampled_from(STRANGERS))
        def typed(text: str, user: str) -> None:
            loop.run(one(text, user))

        try:
            typed()
            refusals = observer.ledger_since(first.ledger_seq)
        finally:
            observer.close()

    # The generator did reach the use cases, and the state-changing ones said no.
    parsed = sum(n for key, n in seen.items() if " " in key)
    refused = sum(n for key, n in seen.items() if key.endswith(" refused"))
    assert seen["examples"] == FAST_EXAMPLES, seen
    assert parsed >= FAST_EXAMPLES // 10 and seen["long"] >= FAST_EXAMPLES // 50, seen
    assert {key.split()[0] for key in seen if key.endswith(" refused")} >= STATE_CHANGING, seen
    assert {kind for kind, _ in refusals} == {"refused"}
    assert len(refusals) == refused - unledgered.total(), (len(refusals), refused, unledgered)


# -- the same through the real bot over HTTP ----------------------------------------------------


@contextlib.contextmanager
def served_on_own_loop(
    tmp_path: Path, sqlite_template: Path
) -> Iterator[tuple[asyncio.Runner, BotFactory, BotHarness]]:
    """The bot served on 127.0.0.1 (tests/bot_harness.py), on a loop of the test's own."""
    with asyncio.Runner() as loop:
        resources = contextlib.AsyncExitStack()
        try:
            factory = loop.run(resources.enter_async_context(bot_world(tmp_path, sqlite_template)))
            harness = loop.run(resources.enter_async_context(serving(factory)))
            yield loop, factory, harness
        finally:
            loop.run(resources.aclose())


def _is_evidence(text: str) -> bool:
    try:
        return parse(text).name == "evidence"
    except Usage:
        return False


def test_no_slash_command_text_sent_over_http_gets_a_5xx_or_a_traceback_or_changes_state(
    tmp_path: Path,
    sqlite_template: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    with served_on_own_loop(tmp_path, sqlite_template) as (loop, factory, h):
        run = loop.run(a_run_with_something_to_act_on(h.bot, factory))
        observer = Observer(h.bot, run)
        last = [observer.read()]
        seen: Counter[str] = Counter()

        async def one(text: str, user: str) -> None:
            seen["examples"] += 1
            rid = f"fuzz-{seen['examples']}"
            signed = signing.signed_slash_command(
                secret=SECRET,
                text=text,
                user_id=user,
                user_name=user.lower(),
                channel_id=BRIDGE,
                response_url=h.slack.response_url(rid),
            )
            status, ack = await h.post(signed.body, signed.headers)
            assert status == 200, (text, status, ack)
            if ack:  # a malformed line is answered in the ack itself
                assert isinstance(ack, dict) and ack.get("response_type") == "ephemeral", (text, ack)
                assert_clean(json.dumps(ack, ensure_ascii=False), text)
                seen["answered in the ack"] += 1
            else:
                await wait_until(lambda: bool(h.slack.responses(rid)), what=f"the answer to {text!r}")
                (answer,) = h.slack.responses(rid)
                assert answer.get("response_type") == "ephemeral", (text, answer)
                assert_clean(json.dumps(answer, ensure_ascii=False), text)
                seen["answered on response_url"] += 1
            last[0] = observer.unchanged(last[0], typed=text, evidence_allowed=_is_evidence(text))

        @settings(FUZZ, max_examples=HTTP_EXAMPLES)
        @given(text=slash_text, user=st.sampled_from(STRANGERS))
        def typed(text: str, user: str) -> None:
            loop.run(one(text, user))

        try:
            typed()
        finally:
            observer.close()
        api_calls = [call.method for call in h.slack.calls() if call.method != "auth.test"]

    assert seen["examples"] == HTTP_EXAMPLES, seen
    assert seen["answered in the ack"] > 0 and seen["answered on response_url"] > 0, seen
    assert api_calls == [], "nothing is sent to the room: the outbox is not drained here"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], [r.getMessage() for r in errors]
