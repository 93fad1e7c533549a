"""The history tables, as one SQLAlchemy ``MetaData`` shared by the store and migrations.

Index and constraint names come from a naming convention so that a future Alembic
autogenerate run produces stable names on every database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, on every database.

    SQLite has no timestamp type: it stores text and compares text, so values are
    written as naive UTC (one zone, no offset) to keep text order equal to time order,
    and given back their UTC zone on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"refusing naive datetime {value!r}: its zone is unknown")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json(*, none_as_null: bool = False) -> Any:
    # JSONB on PostgreSQL: it has containment operators and GIN indexes; JSON text elsewhere.
    return JSON(none_as_null=none_as_null).with_variant(
        JSONB(none_as_null=none_as_null), "postgresql"
    )


runs = Table(
    "runs",
    metadata,
    Column("id", String, primary_key=True),
    Column("task", String, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("queued", UTCDateTime(), nullable=False),
    Column("start", UTCDateTime()),
    Column("end", UTCDateTime()),
    Column("execute_after", UTCDateTime()),
    Column("attempt", Integer, nullable=False),
    Column("rate_limit_attempt", Integer, nullable=False),
    Column("from_run_id", String, nullable=False),
    Column("root_run_id", String, nullable=False),
    Column("params", _json(), nullable=False),
    # SQL NULL, not JSON null, when a run has no result: "IS NULL" then means "no result".
    Column("result", _json(none_as_null=True)),
    Column("error_type", Text),
    Column("error_message", Text),
    Column("error_traceback", Text),
    Column("reason", Text, nullable=False),
    Column("tags", _json(), nullable=False),
    Column("trace_context", _json(), nullable=False),
    Column("worker_id", String, nullable=False),
    Column("version", BigInteger, nullable=False),
    # The page order and cursor: (queued, id) descending, walked backwards on this index.
    Index(None, "queued", "id"),
    # Listing one task's runs is the most common query: filter and order on one index.
    Index(None, "task", "queued", "id"),
    # jsonb_path_ops is smaller and faster for @> (all params filtering needs).
    Index(
        "ix_runs_params_gin",
        "params",
        postgresql_using="gin",
        postgresql_ops={"params": "jsonb_path_ops"},
    ).ddl_if(dialect="postgresql"),
    # The default jsonb_ops, because tag filters use ?| which jsonb_path_ops lacks.
    Index("ix_runs_tags_gin", "tags", postgresql_using="gin").ddl_if(dialect="postgresql"),
)


async def create_schema(engine: AsyncEngine) -> None:
    """Create missing tables and indexes.

    Stand-in until Alembic migrations exist: it only ever adds what is missing, so
    switching to ``alembic upgrade head`` later needs a baseline revision of this schema
    and nothing else.
    """
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
