"""One active run per channel, as a partial unique index on `runs.channel`.

Before it, two `/cutover open` of one plan a few milliseconds apart on two replicas could both
commit (each had checked that no run was active). A database that already holds two active runs in
one channel cannot take the index: the upgrade stops and names the channel, and an operator aborts
one of the runs (`/cutover abort` in that channel) before upgrading again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported from store.tables: a migration is a frozen record of a change.
ACTIVE = "state NOT IN ('completed', 'rolled_back', 'aborted', 'superseded')"


def upgrade() -> None:
    crowded = (
        op.get_bind()
        .execute(sa.text(f"SELECT channel FROM runs WHERE {ACTIVE} GROUP BY channel HAVING COUNT(*) > 1"))
        .scalars()
        .all()
    )
    if crowded:
        raise RuntimeError(
            "cannot enforce one active run per channel: channel(s) "
            f"{', '.join(sorted(crowded))} hold more than one active run; abort all but one, then upgrade"
        )
    op.create_index(
        "uq_runs_one_active_per_channel",
        "runs",
        ["channel"],
        unique=True,
        sqlite_where=sa.text(ACTIVE),
        postgresql_where=sa.text(ACTIVE),
    )


def downgrade() -> None:
    op.drop_index("uq_runs_one_active_per_channel", table_name="runs")
