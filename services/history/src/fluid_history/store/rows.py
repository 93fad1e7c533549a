"""Conversion between a ``Run`` and a row of the runs table (``schema.runs``).

Each field of ``Run`` is kept in the column of its name, as it is, unless ``ADAPTERS``
says how it differs. A new field thus needs nothing here: it travels, or, when the
table has no column of its name, the schema test fails (and so would reading any run).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from sqlalchemy import RowMapping

from fluid.scheduler.models import RunError, TaskPriority, TaskState
from fluid.scheduler.run import Run


def _unchanged(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Converted:
    """A field kept in the column of its name, as a value of another type."""

    to_column: Callable[[Any], Any] = _unchanged
    from_column: Callable[[Any], Any] = _unchanged

    def to_row(self, field: str, value: Any) -> dict[str, Any]:
        return {field: self.to_column(value)}

    def from_row(self, field: str, row: RowMapping) -> Any:
        return self.from_column(row[field])


@dataclass(frozen=True, slots=True)
class Split:
    """A field kept in several columns, none of them of its name."""

    columns: tuple[str, ...]
    to_columns: Callable[[Any], tuple[Any, ...]]
    # Given the values of ``columns``, in that order.
    from_columns: Callable[..., Any]

    def to_row(self, field: str, value: Any) -> dict[str, Any]:
        return dict(zip(self.columns, self.to_columns(value), strict=True))

    def from_row(self, field: str, row: RowMapping) -> Any:
        return self.from_columns(*(row[column] for column in self.columns))


Adapter = Converted | Split


def _error_columns(error: RunError | None) -> tuple[str | None, str | None, str | None]:
    # All three NULL for a run without an error: "error_type IS NULL" means "no error".
    if error is None:
        return None, None, None
    return error.type, error.message, error.traceback


def _error(type_: str | None, message: str | None, traceback: str | None) -> RunError | None:
    if type_ is None:
        return None
    return RunError(type=type_, message=message or "", traceback=traceback or "")


ADAPTERS: dict[str, Adapter] = {
    # Enums as their values: the columns are strings, and the state filters compare them.
    "priority": Converted(attrgetter("value"), TaskPriority),
    "state": Converted(attrgetter("value"), TaskState),
    # JSON has lists only; tags are sorted so that equal sets make equal rows.
    "tags": Converted(sorted, frozenset),
    "output_tail": Converted(list, tuple),
    "error": Split(("error_type", "error_message", "error_traceback"), _error_columns, _error),
}

# Every field of Run with its adapter, looked up once rather than for each row.
_FIELDS: tuple[tuple[str, Adapter], ...] = tuple(
    (field.name, ADAPTERS.get(field.name, Converted())) for field in dataclasses.fields(Run)
)


def row_from_run(run: Run) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for field, adapter in _FIELDS:
        row.update(adapter.to_row(field, getattr(run, field)))
    return row


def run_from_row(row: RowMapping) -> Run:
    return Run(**{field: adapter.from_row(field, row) for field, adapter in _FIELDS})
