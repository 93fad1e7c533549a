"""Values and helpers shared by history's test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine

from fluid.scheduler.run import Run

T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
"""A queued time with microseconds, so truncation anywhere would show."""

MakeRun = Callable[..., Run]


@asynccontextmanager
async def first_upsert_cut(url: URL) -> AsyncIterator[list[int]]:
    """While open, the first session to write runs on PostgreSQL at ``url`` dies after its
    upsert ran and before it commits, as in a restart; yields that session's pid once cut.
    """
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    killer = await asyncio.to_thread(lambda: psycopg.connect(libpq, autocommit=True))
    cut: list[int] = []

    def cut_after_the_upsert(connection: Any, *args: Any) -> None:
        statement: str = args[1]
        if statement.startswith("INSERT INTO runs") and not cut:
            cut.append(connection.connection.dbapi_connection.info.backend_pid)
            killer.execute("SELECT pg_terminate_backend(%s)", cut)

    event.listen(Engine, "after_cursor_execute", cut_after_the_upsert)
    try:
        yield cut
    finally:
        event.remove(Engine, "after_cursor_execute", cut_after_the_upsert)
        killer.close()
