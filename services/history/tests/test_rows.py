"""The runs table and ``Run`` agree: every field has its columns, every column its field.

A field added to ``Run`` travels to the column of its name; without that column (and a
migration adding it) it fails here rather than at the first run stored or read.
"""

from __future__ import annotations

import dataclasses

from fluid.scheduler.run import Run
from fluid_history.store.rows import ADAPTERS, Split, row_from_run
from fluid_history.store.schema import runs

FIELDS = [field.name for field in dataclasses.fields(Run)]
COLUMNS = {column.name for column in runs.columns}


def _columns_of(field: str) -> tuple[str, ...]:
    # The column of the field's name, unless the codec documents a split (the error).
    adapter = ADAPTERS.get(field)
    return adapter.columns if isinstance(adapter, Split) else (field,)


def test_every_run_field_has_its_columns_in_the_runs_table() -> None:
    missing = {
        field: absent
        for field in FIELDS
        if (absent := [column for column in _columns_of(field) if column not in COLUMNS])
    }
    assert not missing, f"Run fields without a column in schema.runs: {missing}"


def test_every_column_of_the_runs_table_is_filled_by_a_run_field() -> None:
    filled = {column for field in FIELDS for column in _columns_of(field)}
    assert COLUMNS - filled == set(), "columns of schema.runs that no Run field fills"


def test_every_adapter_is_for_a_run_field() -> None:
    # An adapter left behind by a renamed field would leave the new name unconverted.
    assert set(ADAPTERS) - set(FIELDS) == set()


def test_a_row_has_exactly_the_columns_of_the_runs_table() -> None:
    assert set(row_from_run(Run(id="run", task="task"))) == COLUMNS
