"""Opening the history database: one engine factory for the store and for migrations."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from fluid.scheduler.errors import UnavailableError

from . import dialects

logger = logging.getLogger("fluid.history.store")


def database_url(url: str | URL) -> URL:
    """``url`` parsed, refusing databases the store has no SQL for."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in dialects.SUPPORTED:
        raise ValueError(
            f"unsupported database {parsed.get_backend_name()!r}: "
            f"use one of {', '.join(dialects.SUPPORTED)}"
        )
    return parsed


def in_schema(url: URL, schema: str) -> URL:
    """``url`` with every session's ``search_path`` set to ``schema`` (PostgreSQL).

    Tables, indexes and Alembic's version table then live in that schema with no schema
    name anywhere in the code: several histories (or test runs) can share one database.
    The sessions also carry the schema as ``application_name``, to be found in
    ``pg_stat_activity``.
    """
    given = url.query.get("options", ())
    options = [*([given] if isinstance(given, str) else given), f"-csearch_path={schema}"]
    return url.update_query_dict({"options": " ".join(options), "application_name": schema})


def open_engine(url: URL) -> AsyncEngine:
    """An async engine on ``url`` configured the way history needs on that database."""
    if url.get_backend_name() == "sqlite":
        _create_sqlite_directory(url)
    engine = create_async_engine(
        url,
        json_serializer=dialects.canonical_json,
        # A restarted database (or a proxy that dropped idle connections) leaves dead
        # connections in the pool; testing each at checkout turns that into a reconnect
        # instead of a failed request.
        pool_pre_ping=True,
    )
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
    return engine


@asynccontextmanager
async def database_errors() -> AsyncIterator[None]:
    """A database that cannot be reached is UNAVAILABLE: the caller retries later.

    That covers a server that is down, a connection cut mid-transaction (restart,
    failover, ``pg_terminate_backend``), a deadlock victim and a pool with no free
    connection. The transaction was rolled back in each case, so the retry is safe.
    """
    # The caller hears what happened, never the driver's text: it names the server's
    # address and port. The details go to this service's log.
    try:
        yield
    except OperationalError as error:
        logger.warning("history database unavailable: %s", error.orig)
        raise UnavailableError("history database unavailable; try again") from error
    except PoolTimeoutError as error:
        logger.warning("history database busy: %s", error)
        raise UnavailableError("history database busy; try again") from error
    except DBAPIError as error:
        if error.connection_invalidated:
            logger.warning("history database connection lost: %s", error.orig)
            raise UnavailableError("history database connection lost; try again") from error
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
