"""The SQLAlchemy (async) run store: PostgreSQL in production, SQLite when embedded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select, tuple_
from sqlalchemy.engine import URL
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fluid.scheduler.errors import UnavailableError
from fluid.scheduler.limits import truncated
from fluid.scheduler.run import Run, newest_first_per_run
from fluid_history.domain.cursor import Cursor
from fluid_history.domain.query import RunPage, RunQuery
from fluid_history.domain.snapshots import RecordResult, RefusedSnapshot

from . import dialects, migrate
from .engine import database_errors, database_url, open_engine
from .rows import row_from_run, run_from_row
from .schema import runs

# Rows per INSERT on SQLite: 22 bound parameters a row stay well under its 32,766 per
# statement. (PostgreSQL gets a whole batch as one statement of 22 arrays.)
ROWS_PER_STATEMENT = 500

# Of what the database says about a refused value, in a refusal's reason.
_CAUSE_CHARS = 300


class SqlRunStore:
    """A ``RunStore`` on any database SQLAlchemy reaches through an async driver."""

    FEW_MATCHES = 5000
    """Up to this many runs matching a params filter are fetched whole and sorted."""

    def __init__(self, url: str | URL, *, migrate: bool = True) -> None:
        """``migrate``: upgrade the schema to head on open; otherwise refuse to open a
        database that lacks a revision this code needs (``fluid history migrate``)."""
        self.url = database_url(url)
        self._migrate = migrate
        self._engine: AsyncEngine | None = None

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    async def open(self) -> None:
        if self._engine is not None:
            return
        engine = open_engine(self.url)
        try:
            if self._migrate:
                await migrate.upgrade(engine)
            else:
                await migrate.require_current(engine)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def record(self, snapshots: Sequence[Run]) -> RecordResult:
        # The store writes the first of each run; the next one stands in only when the
        # store refuses it, so a batch means what its snapshots sent one by one would:
        # sent alone, the older one would have been stored before the newer was refused.
        # On a tie the first seen goes first: a version equal to the stored one is ignored.
        pending = newest_first_per_run(snapshots, lambda run: run.id, lambda run: run.version)
        result = RecordResult()
        while pending:
            # One snapshot per run: PostgreSQL refuses an upsert touching a row twice.
            # Rows are written in id order so that two replicas upserting overlapping
            # batches lock them in the same order and cannot deadlock.
            written = await self._write_or_split([pending[run_id][0] for run_id in sorted(pending)])
            result += written
            # A refused snapshot's next one stands in for it, as it would have been
            # stored had the snapshots come one by one.
            pending = {
                refusal.run_id: rest
                for refusal in written.refused
                if (rest := pending[refusal.run_id][1:])
            }
        return result

    async def _write_or_split(self, latest: list[Run]) -> RecordResult:
        """``latest`` in one transaction; when the database refuses a value in it, each
        half in turn, until every refused row stands alone and the others are committed.

        A batch without a bad value (nearly all of them) costs one transaction; one bad
        row among n costs about 2 log2(n) more.
        """
        try:
            return RecordResult(applied=await self._write(latest))
        except StatementError as error:
            if not _refuses_a_value(error):
                raise
            if len(latest) == 1:
                reason = f"the database refused this snapshot: {_cause(error)}"
                return RecordResult(refused=(RefusedSnapshot.of(latest[0], reason),))
        middle = len(latest) // 2
        return await self._write_or_split(latest[:middle]) + await self._write_or_split(
            latest[middle:]
        )

    async def _write(self, latest: list[Run]) -> tuple[Run, ...]:
        statement, parameters = dialects.upsert(self.dialect, [row_from_run(run) for run in latest])
        async with self._connect() as connection, connection.begin():
            result = await connection.execute(
                statement.execution_options(insertmanyvalues_page_size=ROWS_PER_STATEMENT),
                parameters,
            )
            applied = set(result.scalars())
        return tuple(run for run in latest if run.id in applied)

    async def list_runs(self, query: RunQuery) -> RunPage:
        matching = select(runs).where(*self._conditions(query))
        # One row past the page tells whether another page exists without a COUNT.
        size = query.limit + 1
        async with self._connect() as connection:
            if await self._few_params_matches(connection, query, matching):
                # Fetch the few matches through the GIN index and sort them. The OFFSET 0
                # fence keeps PostgreSQL from choosing instead to walk the page-order
                # index newest first, filtering every run it meets: its JSON selectivity
                # estimates are coarse (a value seen in the column's statistics counts
                # as 1% of rows), and for a rare value that walk reads most of the table.
                fenced = matching.offset(0).subquery()
                statement = select(fenced).order_by(fenced.c.queued.desc(), fenced.c.id.desc())
            else:
                statement = matching.order_by(runs.c.queued.desc(), runs.c.id.desc())
            rows = (await connection.execute(statement.limit(size))).mappings().all()
        page = [run_from_row(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return RunPage(runs=page, next_cursor=Cursor.after(page[-1]) if more else None)

    def _conditions(self, query: RunQuery) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if query.task:
            conditions.append(runs.c.task == query.task)
        if query.states:
            conditions.append(runs.c.state.in_(sorted(s.value for s in query.states)))
        if query.queued_after is not None:
            conditions.append(runs.c.queued >= query.queued_after)
        if query.queued_before is not None:
            conditions.append(runs.c.queued < query.queued_before)
        if query.params_contain:
            conditions.append(dialects.params_contain(self.dialect, query.params_contain))
        if query.tags:
            conditions.append(dialects.has_any_tag(self.dialect, query.tags))
        if query.after is not None:
            position = (query.after.queued, query.after.run_id)
            conditions.append(tuple_(runs.c.queued, runs.c.id) < position)
        return conditions

    async def _few_params_matches(
        self, connection: AsyncConnection, query: RunQuery, matching: Select[Any]
    ) -> bool:
        """Whether a params-filtered query matches at most ``FEW_MATCHES`` runs (PostgreSQL).

        Counting up to that bound is cheap either way: few matches come straight from
        the GIN index, and when there are many, the first ones are found quickly. Tags
        are left out: a handful of values shared by many runs is what tags are, and the
        planner estimates those well.
        """
        if self.dialect != "postgresql" or not query.params_contain:
            return False
        probe = matching.with_only_columns(runs.c.id).limit(self.FEW_MATCHES + 1).subquery()
        found = await connection.scalar(select(func.count()).select_from(probe))
        return (found or 0) <= self.FEW_MATCHES

    async def get_run(self, run_id: str) -> Run | None:
        async with self._connect() as connection:
            row = (
                (await connection.execute(select(runs).where(runs.c.id == run_id)))
                .mappings()
                .one_or_none()
            )
        return None if row is None else run_from_row(row)

    async def delete_queued_before(self, cutoff: datetime, limit: int) -> int:
        # Oldest first through the (queued, id) index; one short transaction per call so
        # a large purge never holds locks (or a huge WAL segment) for long.
        doomed = select(runs.c.id).where(runs.c.queued < cutoff).order_by(runs.c.queued)
        statement = delete(runs).where(runs.c.id.in_(doomed.limit(limit).scalar_subquery()))
        async with self._connect() as connection, connection.begin():
            result = await connection.execute(statement)
            return result.rowcount

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        if self._engine is None:
            raise UnavailableError("the history store is not open")
        async with database_errors(), self._engine.connect() as connection:
            yield connection


def _refuses_a_value(error: StatementError) -> bool:
    """Whether ``error`` refuses a value of the statement, not the statement or the database.

    Lost connections never get here: ``database_errors`` made them ``UnavailableError``.
    ``DBAPIError`` is a ``StatementError`` too: of the database's own errors only these
    two are about a value. One of SQLAlchemy's own is about a value when binding one
    raised ``ValueError`` (a naive datetime); any other is a bug every row would share.
    """
    if isinstance(error, DBAPIError):
        return isinstance(error, DataError | IntegrityError)
    return isinstance(error.orig, ValueError)


def _cause(error: StatementError) -> str:
    # The driver's message and its DETAIL line (PostgreSQL's "\u0000 cannot be converted
    # to text"), not str(error), which holds the statement and a whole batch of run
    # data, nor the CONTEXT line, which quotes the value.
    lines = str(error.orig).strip().splitlines() or [type(error.orig).__name__]
    details = [
        f"({line.removeprefix('DETAIL:').strip()})"
        for line in lines[1:]
        if line.startswith("DETAIL:")
    ]
    return truncated(" ".join([lines[0], *details]), _CAUSE_CHARS)
