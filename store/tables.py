"""Every table, as SQLAlchemy Core: the shape the repositories read and write.

The migrations under store/migrations build exactly this schema (a test compares the two), so a
change here needs a new migration. Rows leave the store as frozen dataclasses, never as SQLAlchemy
rows or ORM objects.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from store.columns import Id, Json, UTCDateTime

# Named constraints keep migrations reproducible on both databases.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

USER = 64  # Slack user and channel ids are short; a little room for enterprise ids
NAME = 200  # plan, checkpoint, gate, hold and role names
HASH = 64  # sha256 hex

plans = Table(
    "plans",
    metadata,
    Column("revision", String(HASH), primary_key=True),
    Column("plan_id", String(NAME), nullable=False, index=True),
    Column("content", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)


runs = Table(
    "runs",
    metadata,
    Column("run_id", String(NAME), primary_key=True),
    Column("plan_id", String(NAME), nullable=False),
    Column("plan_revision", String(HASH), ForeignKey("plans.revision"), nullable=False),
    Column("channel", String(USER), nullable=False),
    Column("state", String(32), nullable=False),
    Column("progress", Json, nullable=False),
    Column("acting", Json, nullable=False),
    Column("authoritative_version", Integer, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("lock_version", Integer, nullable=False, server_default=text("0")),
    Index(None, "channel", "state"),
    Index(None, "state"),
)

# One active run per channel, kept by the database itself: two `/cutover open` racing on two
# replicas cannot both commit. The states listed are the ones a run never leaves (`superseded`
# included, so a superseding run can open in the same channel).
ENDED_STATES_SQL = "state NOT IN ('completed', 'rolled_back', 'aborted', 'superseded')"
Index(
    "uq_runs_one_active_per_channel",
    runs.c.channel,
    unique=True,
    sqlite_where=text(ENDED_STATES_SQL),
    postgresql_where=text(ENDED_STATES_SQL),
)

packets = Table(
    "packets",
    metadata,
    Column("run_id", String(NAME), ForeignKey("runs.run_id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("hash", String(HASH), nullable=False),
    Column("body", Json, nullable=False),
    Column("reason", Text, nullable=False),
    Column("supersedes", Integer, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("state_changed_at", UTCDateTime, nullable=False),
    Column("slack_channel", String(USER), nullable=True),
    Column("slack_ts", String(USER), nullable=True),
    PrimaryKeyConstraint("run_id", "version"),
    Index(None, "run_id", "state"),
)


holds = Table(
    "holds",
    metadata,
    Column("run_id", String(NAME), ForeignKey("runs.run_id"), nullable=False),
    Column("hold_id", String(NAME), nullable=False),
    Column("checkpoint", String(NAME), nullable=True),
    Column("source", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("release_by", Json, nullable=False),
    Column("mode", String(8), nullable=False),
    Column("state", String(16), nullable=False),
    Column("packet_version", Integer, nullable=True),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("opened_by", String(USER), nullable=True),
    Column("released_at", UTCDateTime, nullable=True),
    Column("released_by", String(USER), nullable=True),
    Column("released_as", String(NAME), nullable=True),
    Column("release_note", Text, nullable=True),
    PrimaryKeyConstraint("run_id", "hold_id"),
    Index(None, "state"),
)


gate_results = Table(
    "gate_results",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(NAME), ForeignKey("runs.run_id"), nullable=False),
    Column("checkpoint", String(NAME), nullable=False),
    Column("gate", String(NAME), nullable=False),
    Column("slot", BigInteger, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("value", Float, nullable=True),
    Column("reason", Text, nullable=False),
    Column("packet_version", Integer, nullable=True),
    Column("at", UTCDateTime, nullable=False),
    UniqueConstraint("run_id", "checkpoint", "gate", "slot"),
)

acks = Table(
    "acks",
    metadata,
    Column("run_id", String(NAME), ForeignKey("runs.run_id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("user_id", String(USER), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("run_id", "version", "user_id"),
    Index(None, "user_id"),
)


# No foreign key to runs: a chain is keyed by a run id, but the ledger must outlive any repair of
# the runs table, and verifying it must never depend on other tables being intact.
ledger = Table(
    "ledger",
    metadata,
    Column("run_id", String(NAME), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(USER), nullable=False),
    Column("kind", String(64), nullable=False),
    # The canonical JSON text that was hashed, byte for byte.
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(HASH), nullable=False),
    Column("hash", String(HASH), nullable=False),
    PrimaryKeyConstraint("run_id", "seq"),
)

# The last seq and hash of each chain: the row appends lock to stay in order, and what lets
# `ledger verify` notice rows cut off the end of a chain.
ledger_heads = Table(
    "ledger_heads",
    metadata,
    Column("run_id", String(NAME), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", String(HASH), nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(NAME), ForeignKey("runs.run_id"), nullable=True),
    Column("kind", String(64), nullable=False),
    Column("recipient", String(USER), nullable=False),
    Column("payload", Json, nullable=False),
    Column("state", String(24), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("slack_ts", String(USER), nullable=True),
    Column("slack_channel", String(USER), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("dedupe_key", String(NAME), nullable=True),
    # Which sender holds the claim (a replica's identity): a replica restarting takes back its own
    # claimed rows at once instead of waiting out the lease.
    Column("claimed_by", String(NAME), nullable=True),
    UniqueConstraint("run_id", "dedupe_key"),
    Index(None, "state", "next_attempt_at"),
    Index(None, "recipient", "id"),
)

# NULLs never collide in a unique constraint, so run-less rows need their own partial index.
Index(
    "uq_outbox_dedupe_key_without_run",
    outbox.c.dedupe_key,
    unique=True,
    sqlite_where=outbox.c.run_id.is_(None),
    postgresql_where=outbox.c.run_id.is_(None),
)

# Traffic shifts the engine asked for, queued like outbox messages: written in the use case's
# transaction, sent to the actuator after it commits (never while a run is locked), answered in a
# transaction of their own. `pending` -> `sending` (a leased claim) -> `done`; a row whose answer
# came back but could not be fed to the engine waits as `answered` (never sent again).
traffic_shifts = Table(
    "traffic_shifts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(NAME), ForeignKey("runs.run_id"), nullable=False),
    Column("idempotency_key", String(NAME), nullable=False),
    Column("payload", Json, nullable=False),
    Column("state", String(24), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("ok", Integer, nullable=True),
    Column("detail", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("answered_at", UTCDateTime, nullable=True),
    Index(None, "state", "id"),
    Index(None, "run_id", "id"),
)

# Slack requests made durable before Slack hears 200 (bot.intake): one row per distinct signed body
# (`dedupe_key`, the body's sha256: Slack's retries and a replayed request carry the same body).
# `processing` (claimed by a replica until `claimed_until`) -> `done`, or back to `pending` with a
# later `next_attempt_at` when processing failed or its replica stopped.
inbox = Table(
    "inbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(HASH), nullable=False, unique=True),
    Column("body", Text, nullable=False),
    Column("headers", Json, nullable=False),
    Column("state", String(24), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("received_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_by", String(NAME), nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("done_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Index(None, "state", "next_attempt_at"),
)

# The pace toward Slack per Web API method, shared by every replica (bot.pace). Times are seconds
# since the epoch on the database's own clock, so replicas on hosts whose clocks disagree still
# agree on every slot. `rate`: the calls per second all replicas together may start, learned from
# Slack's 429s (NULL: not learned); `next_slot`: the start of the next free slot (a reservation
# takes it and moves it on by 1/rate); `not_before`: Retry-After, which every replica honours;
# `learned_at`: when `rate` last changed (reports of one burst are added up, see store.pace);
# `refused_at`: when a paced call last met a 429 (one alone does not lower the rate).
slack_pace = Table(
    "slack_pace",
    metadata,
    Column("method", String(NAME), primary_key=True),
    Column("rate", Float, nullable=True),
    Column("not_before", Float, nullable=False, server_default=text("0")),
    Column("next_slot", Float, nullable=False, server_default=text("0")),
    Column("learned_at", Float, nullable=True),
    Column("refused_at", Float, nullable=True),
)
