"""Initial schema: plans, sign-offs, runs, packets, projections, gate results, ledger, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported from store.tables: a migration is a frozen record of a change.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AT = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True)
USER = 64
NAME = 200
HASH = 64


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("revision", sa.String(HASH), nullable=False),
        sa.Column("plan_id", sa.String(NAME), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("revision", name="pk_plans"),
    )
    op.create_index("ix_plans_plan_id", "plans", ["plan_id"])

    op.create_table(
        "signoffs",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("revision", sa.String(HASH), nullable=False),
        sa.Column("role", sa.String(NAME), nullable=False),
        sa.Column("user_id", sa.String(USER), nullable=False),
        sa.Column("at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signoffs"),
        sa.ForeignKeyConstraint(["revision"], ["plans.revision"], name="fk_signoffs_revision_plans"),
        sa.UniqueConstraint("revision", "role", "user_id", name="uq_signoffs_revision_role_user_id"),
    )

    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(NAME), nullable=False),
        sa.Column("plan_id", sa.String(NAME), nullable=False),
        sa.Column("plan_revision", sa.String(HASH), nullable=False),
        sa.Column("channel", sa.String(USER), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("progress", JSON, nullable=False),
        sa.Column("acting", JSON, nullable=False),
        sa.Column("authoritative_version", sa.Integer(), nullable=True),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("updated_at", AT, nullable=False),
        sa.Column("lock_version", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
        sa.ForeignKeyConstraint(["plan_revision"], ["plans.revision"], name="fk_runs_plan_revision_plans"),
    )
    op.create_index("ix_runs_channel_state", "runs", ["channel", "state"])
    op.create_index("ix_runs_state", "runs", ["state"])

    op.create_table(
        "packets",
        sa.Column("run_id", sa.String(NAME), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("hash", sa.String(HASH), nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("supersedes", sa.Integer(), nullable=True),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("state_changed_at", AT, nullable=False),
        sa.Column("slack_channel", sa.String(USER), nullable=True),
        sa.Column("slack_ts", sa.String(USER), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "version", name="pk_packets"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_packets_run_id_runs"),
    )
    op.create_index("ix_packets_run_id_state", "packets", ["run_id", "state"])

    op.create_table(
        "checkpoints",
        sa.Column("run_id", sa.String(NAME), nullable=False),
        sa.Column("checkpoint", sa.String(NAME), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("owner_role", sa.String(NAME), nullable=True),
        sa.Column("owner_user", sa.String(USER), nullable=True),
        sa.Column("started_at", AT, nullable=True),
        sa.Column("completed_at", AT, nullable=True),
        sa.Column("detail", JSON, nullable=True),
        sa.Column("updated_at", AT, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "checkpoint", name="pk_checkpoints"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_checkpoints_run_id_runs"),
    )
    op.create_index("ix_checkpoints_owner_user", "checkpoints", ["owner_user"])

    op.create_table(
        "holds",
        sa.Column("run_id", sa.String(NAME), nullable=False),
        sa.Column("hold_id", sa.String(NAME), nullable=False),
        sa.Column("checkpoint", sa.String(NAME), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("release_by", JSON, nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("packet_version", sa.Integer(), nullable=True),
        sa.Column("opened_at", AT, nullable=False),
        sa.Column("opened_by", sa.String(USER), nullable=True),
        sa.Column("released_at", AT, nullable=True),
        sa.Column("released_by", sa.String(USER), nullable=True),
        sa.Column("released_as", sa.String(NAME), nullable=True),
        sa.Column("release_note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "hold_id", name="pk_holds"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_holds_run_id_runs"),
    )
    op.create_index("ix_holds_state", "holds", ["state"])

    op.create_table(
        "hold_approvals",
        sa.Column("run_id", sa.String(NAME), nullable=False),
        sa.Column("hold_id", sa.String(NAME), nullable=False),
        sa.Column("role", sa.String(NAME), nullable=False),
        sa.Column("user_id", sa.String(USER), nullable=False),
        sa.Column("at", AT, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "hold_id", "role", name="pk_hold_approvals"),
        sa.ForeignKeyConstraint(
            ["run_id", "hold_id"],
            ["holds.run_id", "holds.hold_id"],
            name="fk_hold_approvals_run_id_hold_id_holds",
        ),
    )

    op.create_table(
        "gate_results",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(NAME), nullable=False),
        sa.Column("checkpoint", sa.String(NAME), nullable=False),
        sa.Column("gate", sa.String(NAME), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("packet_version", sa.Integer(), nullable=True),
        sa.Column("at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gate_results"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_gate_results_run_id_runs"),
        sa.UniqueConstraint(
            "run_id", "checkpoint", "gate", "slot", name="uq_gate_results_run_id_checkpoint_gate_slot"
        ),
    )

    op.create_table(
        "acks",
        sa.Column("run_id", sa.String(NAME), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(USER), nullable=False),
        sa.Column("at", AT, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "version", "user_id", name="pk_acks"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_acks_run_id_runs"),
    )
    op.create_index("ix_acks_user_id", "acks", ["user_id"])

    op.create_table(
        "acting_changes",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(NAME), nullable=False),
        sa.Column("role", sa.String(NAME), nullable=False),
        sa.Column("from_user", sa.String(USER), nullable=True),
        sa.Column("to_user", sa.String(USER), nullable=False),
        sa.Column("by_user", sa.String(USER), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", AT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_acting_changes"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_acting_changes_run_id_runs"),
    )
    op.create_index("ix_acting_changes_run_id", "acting_changes", ["run_id"])

    op.create_table(
        "ledger",
        sa.Column("run_id", sa.String(NAME), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", AT, nullable=False),
        sa.Column("actor", sa.String(USER), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(HASH), nullable=False),
        sa.Column("hash", sa.String(HASH), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "seq", name="pk_ledger"),
    )

    _forbid_ledger_changes()

    op.create_table(
        "ledger_heads",
        sa.Column("run_id", sa.String(NAME), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(HASH), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_ledger_heads"),
    )

    op.create_table(
        "outbox",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(NAME), nullable=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(USER), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", AT, nullable=False),
        sa.Column("claimed_until", AT, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("slack_ts", sa.String(USER), nullable=True),
        sa.Column("slack_channel", sa.String(USER), nullable=True),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("sent_at", AT, nullable=True),
        sa.Column("dedupe_key", sa.String(NAME), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_outbox_run_id_runs"),
        sa.UniqueConstraint("run_id", "dedupe_key", name="uq_outbox_run_id_dedupe_key"),
    )
    op.create_index("ix_outbox_state_next_attempt_at", "outbox", ["state", "next_attempt_at"])
    op.create_index("ix_outbox_recipient_id", "outbox", ["recipient", "id"])
    op.create_index(
        "uq_outbox_dedupe_key_without_run",
        "outbox",
        ["dedupe_key"],
        unique=True,
        sqlite_where=sa.text("run_id IS NULL"),
        postgresql_where=sa.text("run_id IS NULL"),
    )


# The code never updates or deletes a ledger row; the database refuses to as well, so that a
# change to the ledger takes someone dropping these triggers first (and still breaks the chain).
LEDGER_APPEND_ONLY = "the ledger is append-only"


def _forbid_ledger_changes() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{LEDGER_APPEND_ONLY}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger "
            "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
        )
        return
    for event in ("update", "delete"):
        op.execute(
            f"CREATE TRIGGER ledger_no_{event} BEFORE {event.upper()} ON ledger "
            f"BEGIN SELECT RAISE(ABORT, '{LEDGER_APPEND_ONLY}'); END"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_append_only ON ledger")
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
    for table in (
        "outbox",
        "ledger_heads",
        "ledger",
        "acting_changes",
        "acks",
        "gate_results",
        "hold_approvals",
        "holds",
        "checkpoints",
        "packets",
        "runs",
        "signoffs",
        "plans",
    ):
        op.drop_table(table)
