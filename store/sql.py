"""The two statements whose spelling differs between SQLite and PostgreSQL.

Both databases speak `INSERT ... ON CONFLICT`, but SQLAlchemy builds it from dialect-specific
`insert()` constructs; these helpers pick the right one for the connection at hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Row, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement


def _insert(connection: AsyncConnection, table: Table) -> Any:
    name = connection.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the store supports SQLite and PostgreSQL, not {name}")


async def insert_unless_exists(connection: AsyncConnection, table: Table, values: Mapping[str, Any]) -> bool:
    """Insert one row; False (and no error, no row) when any unique key already holds it.

    The conflict target is left out on purpose: every unique key of the table counts, which is what
    "already recorded" means for tables with more than one (the outbox's two dedupe indexes).
    """
    primary_key = next(iter(table.primary_key.columns))
    return await insert_returning(connection, table, values, primary_key) is not None


async def insert_returning(
    connection: AsyncConnection, table: Table, values: Mapping[str, Any], column: ColumnElement[Any]
) -> Any | None:
    """`insert_unless_exists` that gives back `column` of the new row, or None when nothing was inserted."""
    statement = _insert(connection, table).values(**values).on_conflict_do_nothing().returning(column)
    return (await connection.execute(statement)).scalar_one_or_none()


async def insert_many_returning(
    connection: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *columns: ColumnElement[Any],
) -> list[Row[Any]]:
    """`insert_returning` for several rows in one statement: `columns` of the rows inserted, in no
    particular order (RETURNING promises none); a row a unique key already holds is skipped."""
    statement = _insert(connection, table).values(list(rows)).on_conflict_do_nothing().returning(*columns)
    return list(await connection.execute(statement))


async def upsert(
    connection: AsyncConnection,
    table: Table,
    values: Mapping[str, Any],
    *,
    key: Sequence[str],
) -> None:
    """Insert one row or, when its key exists, overwrite every other column given."""
    statement = _insert(connection, table).values(**values)
    changes = {name: statement.excluded[name] for name in values if name not in key}
    await connection.execute(statement.on_conflict_do_update(index_elements=list(key), set_=changes))
