"""The SQL that differs between PostgreSQL and SQLite: upserts and JSON filters.

Everything else in the store is portable SQLAlchemy; keeping the differences here
means a new database is one more branch in each function, not a new store.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.dml import ReturningInsert

from fluid.scheduler.run import JsonValue

from .schema import runs

SUPPORTED = ("postgresql", "sqlite")
_JSON_COLUMNS = frozenset(column.name for column in runs.columns if isinstance(column.type, JSON))


def canonical_json(value: Any) -> str:
    """The JSON text stored for params, results and tags.

    Sorted keys at every depth make equal objects equal text, which is what SQLite's
    comparison of nested params relies on (PostgreSQL's JSONB normalises by itself).
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


Upsert = tuple[ReturningInsert[str], dict[str, Any] | list[dict[str, Any]]]
"""A statement and the parameters to execute it with; it returns the applied ids."""


def upsert(dialect: str, rows: Sequence[Mapping[str, Any]]) -> Upsert:
    """Insert rows, or update a stored run only with a higher version.

    Both databases skip the update (and the returned id) when the WHERE is false, so
    the ids coming back are exactly the snapshots that changed something. ``rows`` must
    hold one row per run id: an upsert may not touch a row twice.

    The statement text is the same for every batch, so it is compiled (and, on
    PostgreSQL, parsed and planned) once: with one placeholder per value, turning a
    500-row statement into SQL costs more than the database takes to run it.
    """
    if dialect == "postgresql":
        # One array per column, unnested server-side into rows: 22 parameters whatever
        # the batch size. JSON travels as canonical text, cast in SQL: an array of
        # JSON lists would otherwise be read as a two-dimensional array.
        arrays = {
            column.name: [
                _json_text(row[column.name]) if column.name in _JSON_COLUMNS else row[column.name]
                for row in rows
            ]
            for column in runs.columns
        }
        return _postgresql_upsert(), arrays
    if dialect == "sqlite":
        # SQLite parses statements cheaply; SQLAlchemy's "insertmanyvalues" sends the
        # rows as multi-row VALUES under its parameter limit.
        return _sqlite_upsert(), [dict(row) for row in rows]
    raise _unsupported(dialect)


def _json_text(value: Any) -> str | None:
    return None if value is None else canonical_json(value)


def _on_conflict_update_newer(
    statement: postgresql.Insert | sqlite.Insert,
) -> ReturningInsert[str]:
    return statement.on_conflict_do_update(
        index_elements=[runs.c.id],
        set_={name: statement.excluded[name] for name in _updated_columns()},
        where=statement.excluded.version > runs.c.version,
    ).returning(runs.c.id)


@cache
def _postgresql_upsert() -> ReturningInsert[str]:
    names = [column.name for column in runs.columns]
    arrays = [
        bindparam(
            column.name,
            type_=postgresql.ARRAY(Text if column.name in _JSON_COLUMNS else column.type),
        )
        for column in runs.columns
    ]
    unnested = func.unnest(*arrays).table_valued(*names).render_derived()
    values = [
        cast(unnested.c[name], JSONB) if name in _JSON_COLUMNS else unnested.c[name]
        for name in names
    ]
    return _on_conflict_update_newer(postgresql.insert(runs).from_select(names, select(*values)))


@cache
def _sqlite_upsert() -> ReturningInsert[str]:
    return _on_conflict_update_newer(sqlite.insert(runs))


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
