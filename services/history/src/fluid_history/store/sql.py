"""The SQLAlchemy (async) run store: PostgreSQL in production, SQLite when embedded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, select, tuple_
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from fluid.scheduler.errors import UnavailableError
from fluid.scheduler.run import Run
from fluid_history.domain.cursor import Cursor
from fluid_history.domain.query import RunPage, RunQuery
from fluid_history.domain.snapshots import latest_per_run

from . import dialects
from .rows import row_from_run, run_from_row
from .schema import create_schema, runs

# 22 bound parameters a row: 500 rows stay well under SQLite's 32,766 and PostgreSQL's
# 65,535 parameters per statement.
ROWS_PER_STATEMENT = 500


class SqlRunStore:
    """A ``RunStore`` on any database SQLAlchemy reaches through an async driver."""

    def __init__(self, database_url: str | URL) -> None:
        self.url = make_url(database_url)
        if self.url.get_backend_name() not in dialects.SUPPORTED:
            raise ValueError(
                f"unsupported database {self.url.get_backend_name()!r}: "
                f"use one of {', '.join(dialects.SUPPORTED)}"
            )
        self._engine: AsyncEngine | None = None

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    async def open(self) -> None:
        if self._engine is not None:
            return
        if self.dialect == "sqlite":
            _create_sqlite_directory(self.url)
        engine = create_async_engine(self.url, json_serializer=dialects.canonical_json)
        if self.dialect == "sqlite":
            event.listen(engine.sync_engine, "connect", _configure_sqlite)
        try:
            async with _database_errors():
                await create_schema(engine)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def record(self, snapshots: Sequence[Run]) -> list[Run]:
        # Also needed for correctness: PostgreSQL refuses an upsert touching a row twice.
        latest = latest_per_run(snapshots)
        applied: set[str] = set()
        async with self._connect() as connection, connection.begin():
            for first in range(0, len(latest), ROWS_PER_STATEMENT):
                chunk = latest[first : first + ROWS_PER_STATEMENT]
                statement = dialects.upsert(self.dialect, [row_from_run(run) for run in chunk])
                result = await connection.execute(statement)
                applied.update(result.scalars())
        return [run for run in latest if run.id in applied]

    async def list_runs(self, query: RunQuery) -> RunPage:
        statement = select(runs)
        if query.task:
            statement = statement.where(runs.c.task == query.task)
        if query.states:
            statement = statement.where(runs.c.state.in_(sorted(s.value for s in query.states)))
        if query.queued_after is not None:
            statement = statement.where(runs.c.queued >= query.queued_after)
        if query.queued_before is not None:
            statement = statement.where(runs.c.queued < query.queued_before)
        if query.params_contain:
            statement = statement.where(dialects.params_contain(self.dialect, query.params_contain))
        if query.tags:
            statement = statement.where(dialects.has_any_tag(self.dialect, query.tags))
        if query.after is not None:
            statement = statement.where(
                tuple_(runs.c.queued, runs.c.id) < (query.after.queued, query.after.run_id)
            )
        # One row past the page tells whether another page exists without a COUNT.
        statement = statement.order_by(runs.c.queued.desc(), runs.c.id.desc()).limit(
            query.limit + 1
        )
        async with self._connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        page = [run_from_row(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return RunPage(runs=page, next_cursor=Cursor.after(page[-1]) if more else None)

    async def get_run(self, run_id: str) -> Run | None:
        async with self._connect() as connection:
            row = (
                (await connection.execute(select(runs).where(runs.c.id == run_id)))
                .mappings()
                .one_or_none()
            )
        return None if row is None else run_from_row(row)

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        if self._engine is None:
            raise UnavailableError("the history store is not open")
        async with _database_errors(), self._engine.connect() as connection:
            yield connection


@asynccontextmanager
async def _database_errors() -> AsyncIterator[None]:
    """A database that cannot be reached is UNAVAILABLE: the caller retries later."""
    try:
        yield
    except OperationalError as error:
        raise UnavailableError(f"history database unavailable: {error.orig}") from error
    except DBAPIError as error:
        if error.connection_invalidated:
            raise UnavailableError(f"history database connection lost: {error.orig}") from error
        raise


def _create_sqlite_directory(url: URL) -> None:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets history queries read while a batch is being written instead of waiting
    # for it; the busy timeout makes a second writer wait rather than fail at once.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()
