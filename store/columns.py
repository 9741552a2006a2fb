"""Column types shared by every table: timestamps that come back timezone-aware, in UTC.

PostgreSQL keeps the offset (`timestamptz`); SQLite keeps none, so every timestamp is converted to
UTC before it is written and labelled UTC when it is read. The two databases then hand back equal
values, and text comparisons of SQLite timestamps order correctly.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, DateTime, Integer
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive time is ambiguous in a war room spread over time zones: refuse it loudly.
            raise ValueError(f"naive datetime {value.isoformat()}: the store needs timezone-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utc(value: datetime) -> datetime:
    """The same instant in UTC; refuses naive times like the column type does."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} given; the store needs timezone-aware times")
    return value.astimezone(UTC)


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")

# Plain JSON (not JSONB) keeps PostgreSQL from reordering or rewriting what was stored.
Json = JSON(none_as_null=True)
