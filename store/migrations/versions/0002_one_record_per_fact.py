"""One record per fact: drop four tables nothing reads, and name hold states as the engine does.

- `checkpoints` and `hold_approvals` were never written in production: a checkpoint's state is in
  `runs.progress`, and a `mode: all` hold's partial releases are in the hold's own record there.
- `signoffs` and `acting_changes` were written and never read: each sign-off is already a
  `signoff` ledger entry (and in `runs.progress`), each switch an `acting_changed` ledger entry
  (and the current map is `runs.acting`). The ledger is the durable record of both.
- A hold withdrawn when its run ended was `cancelled` in the holds table but `withdrawn` in the
  engine and the ledger; the table now says `withdrawn` too.

Downgrade recreates the tables empty (the facts stay in the ledger) and renames the state back.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
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
    op.execute("UPDATE holds SET state = 'withdrawn' WHERE state = 'cancelled'")
    op.drop_index("ix_acting_changes_run_id", table_name="acting_changes")
    op.drop_table("acting_changes")
    op.drop_table("hold_approvals")
    op.drop_index("ix_checkpoints_owner_user", table_name="checkpoints")
    op.drop_table("checkpoints")
    op.drop_table("signoffs")


def downgrade() -> None:
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
    op.execute("UPDATE holds SET state = 'cancelled' WHERE state = 'withdrawn'")
