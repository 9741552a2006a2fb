"""Traffic shifts queued in the use case's transaction and sent after it commits.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported from store.tables: a migration is a frozen record of a change.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AT = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True)
NAME = 200


def upgrade() -> None:
    op.create_table(
        "traffic_shifts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(NAME), nullable=False),
        sa.Column("idempotency_key", sa.String(NAME), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("claimed_until", AT, nullable=True),
        sa.Column("ok", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", AT, nullable=False),
        sa.Column("answered_at", AT, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_traffic_shifts"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_traffic_shifts_run_id_runs"),
    )
    op.create_index("ix_traffic_shifts_state_id", "traffic_shifts", ["state", "id"])
    op.create_index("ix_traffic_shifts_run_id_id", "traffic_shifts", ["run_id", "id"])


def downgrade() -> None:
    op.drop_table("traffic_shifts")
