"""The pace toward Slack shared by every replica: one row per Web API method (bot.pace).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slack_pace",
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("rate", sa.Float, nullable=True),
        sa.Column("not_before", sa.Float, nullable=False, server_default=sa.text("0")),
        sa.Column("next_slot", sa.Float, nullable=False, server_default=sa.text("0")),
        sa.Column("learned_at", sa.Float, nullable=True),
        sa.Column("refused_at", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("method", name="pk_slack_pace"),
    )


def downgrade() -> None:
    op.drop_table("slack_pace")
