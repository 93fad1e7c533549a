"""The SQL that differs between PostgreSQL and SQLite: upserts and JSON filters.

Everything else in the store is portable SQLAlchemy; keeping the differences here
means a new database is one more branch in each function, not a new store.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, func, literal, select, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.dml import ReturningInsert

from fluid.scheduler.run import JsonValue

from .schema import runs

SUPPORTED = ("postgresql", "sqlite")


def canonical_json(value: Any) -> str:
    """The JSON text stored for params, results and tags.

    Sorted keys at every depth make equal objects equal text, which is what SQLite's
    comparison of nested params relies on (PostgreSQL's JSONB normalises by itself).
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def upsert(dialect: str, rows: Sequence[Mapping[str, Any]]) -> ReturningInsert[str]:
    """Insert rows, or update a stored run only with a higher version; returns applied ids.

    Both databases skip the update (and the returned row) when the WHERE is false, so
    the ids coming back are exactly the snapshots that changed something.
    """
    if dialect == "postgresql":
        pg_statement = postgresql.insert(runs).values(list(rows))
        return pg_statement.on_conflict_do_update(
            index_elements=[runs.c.id],
            set_={name: pg_statement.excluded[name] for name in _updated_columns()},
            where=pg_statement.excluded.version > runs.c.version,
        ).returning(runs.c.id)
    if dialect == "sqlite":
        lite_statement = sqlite.insert(runs).values(list(rows))
        return lite_statement.on_conflict_do_update(
            index_elements=[runs.c.id],
            set_={name: lite_statement.excluded[name] for name in _updated_columns()},
            where=lite_statement.excluded.version > runs.c.version,
        ).returning(runs.c.id)
    raise _unsupported(dialect)


def _updated_columns() -> list[str]:
    return [column.name for column in runs.columns if not column.primary_key]


def params_contain(dialect: str, params: Mapping[str, JsonValue]) -> ColumnElement[bool]:
    """Runs whose params contain ``params`` (every key present with an equal value)."""
    if dialect == "postgresql":
        return type_coerce(runs.c.params, JSONB).contains(dict(params))
    if dialect == "sqlite":
        # SQLite has no containment operator, so each top-level key is matched on its
        # own. Limitation: a nested object or array matches only when it is equal as a
        # whole (compared as canonical JSON text), not when it merely contains the filter
        # value as PostgreSQL's @> would.
        return and_(*(_sqlite_param_equals(key, value) for key, value in params.items()))
    raise _unsupported(dialect)


def _sqlite_param_equals(key: str, value: JsonValue) -> ColumnElement[bool]:
    # json_each rather than json_extract: a key is compared as a value, so keys holding
    # dots or quotes need no JSON-path escaping.
    param = func.json_each(runs.c.params).table_valued("key", "value", "type").alias("param")
    # json_each reports the JSON type apart from the SQL value; checking it keeps true
    # from matching 1 and "1" from matching 1, as JSON equality requires.
    if value is None:
        matches = param.c.type == "null"
    elif isinstance(value, bool):
        matches = param.c.type == ("true" if value else "false")
    elif isinstance(value, int | float):
        matches = and_(param.c.type.in_(("integer", "real")), param.c.value == value)
    elif isinstance(value, str):
        matches = and_(param.c.type == "text", param.c.value == value)
    elif isinstance(value, dict | list):
        matches = and_(
            param.c.type == ("object" if isinstance(value, dict) else "array"),
            param.c.value == func.json(literal(canonical_json(value), Text)),
        )
    else:
        raise TypeError(f"params_contain[{key!r}] is not a JSON value: {value!r}")
    return select(literal(1)).select_from(param).where(param.c.key == key, matches).exists()


def has_any_tag(dialect: str, tags: Collection[str]) -> ColumnElement[bool]:
    """Runs carrying at least one of ``tags``."""
    wanted = sorted(tags)
    if dialect == "postgresql":
        any_tag: ColumnElement[bool] = type_coerce(runs.c.tags, JSONB).has_any(
            postgresql.array(wanted, type_=Text)
        )
        return any_tag
    if dialect == "sqlite":
        tag = func.json_each(runs.c.tags).table_valued("value").alias("tag")
        return select(literal(1)).select_from(tag).where(tag.c.value.in_(wanted)).exists()
    raise _unsupported(dialect)


def _unsupported(dialect: str) -> NotImplementedError:
    return NotImplementedError(
        f"history supports {' and '.join(SUPPORTED)} databases, not {dialect}"
    )
