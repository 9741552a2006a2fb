"""The database keeps the ledger append-only and its heads moving forward only.

0001 refused UPDATE and DELETE of ledger rows. A truncated table and a head moved back (or deleted
with its run's rows) still verified clean, and nothing guarded `ledger_heads`. Here:

- PostgreSQL: TRUNCATE of `ledger` is refused too (a statement trigger on the same function).
- Both: `ledger_heads` takes a new head only at seq 0 and the genesis hash (what the append path
  inserts), and a head changes only to seq + 1 with the hash of the ledger row at that seq, which
  the append path has inserted just before in the same transaction; DELETE (and on PostgreSQL
  TRUNCATE) is refused.

The triggers stop a bug or a careless hand; someone who owns the tables can drop them. On
PostgreSQL the tables belong to a separate owner role and the bot's role is only granted what the
append path needs (docs/operations.md), so the bot's credentials cannot.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported: a migration is a frozen record of a change.
GENESIS = "0" * 64
HEADS_FORWARD_ONLY = "a ledger head can only move forward, one appended entry at a time"
# True when a head row is what the append path writes: the next seq and the hash the ledger holds.
_PG_APPENDED = (
    "NEW.run_id = OLD.run_id AND NEW.seq = OLD.seq + 1 AND EXISTS "
    "(SELECT 1 FROM ledger l WHERE l.run_id = NEW.run_id AND l.seq = NEW.seq AND l.hash = NEW.hash)"
)


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
        )
        op.execute(
            "CREATE FUNCTION ledger_heads_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF TG_OP = 'INSERT' AND NEW.seq = 0 AND NEW.hash = '{GENESIS}' THEN RETURN NEW; END IF; "
            f"IF TG_OP = 'UPDATE' AND {_PG_APPENDED} THEN RETURN NEW; END IF; "
            f"RAISE EXCEPTION '{HEADS_FORWARD_ONLY}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER ledger_heads_forward_only BEFORE INSERT OR UPDATE OR DELETE ON ledger_heads "
            "FOR EACH ROW EXECUTE FUNCTION ledger_heads_forward_only()"
        )
        op.execute(
            "CREATE TRIGGER ledger_heads_no_truncate BEFORE TRUNCATE ON ledger_heads "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_heads_forward_only()"
        )
        return
    # SQLite has no TRUNCATE: its DELETE without WHERE runs the DELETE trigger like any other.
    op.execute(
        "CREATE TRIGGER ledger_heads_insert_at_genesis BEFORE INSERT ON ledger_heads "
        f"WHEN NEW.seq <> 0 OR NEW.hash <> '{GENESIS}' "
        f"BEGIN SELECT RAISE(ABORT, '{HEADS_FORWARD_ONLY}'); END"
    )
    op.execute(
        "CREATE TRIGGER ledger_heads_forward_only BEFORE UPDATE ON ledger_heads "
        f"WHEN NOT ({_PG_APPENDED.replace('l.', 'ledger.').replace(' l ', ' ')}) "
        f"BEGIN SELECT RAISE(ABORT, '{HEADS_FORWARD_ONLY}'); END"
    )
    op.execute(
        "CREATE TRIGGER ledger_heads_no_delete BEFORE DELETE ON ledger_heads "
        f"BEGIN SELECT RAISE(ABORT, '{HEADS_FORWARD_ONLY}'); END"
    )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_heads_no_truncate ON ledger_heads")
        op.execute("DROP TRIGGER IF EXISTS ledger_heads_forward_only ON ledger_heads")
        op.execute("DROP FUNCTION IF EXISTS ledger_heads_forward_only()")
        op.execute("DROP TRIGGER IF EXISTS ledger_no_truncate ON ledger")
        return
    for trigger in ("ledger_heads_insert_at_genesis", "ledger_heads_forward_only", "ledger_heads_no_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
