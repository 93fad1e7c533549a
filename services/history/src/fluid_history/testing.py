"""Test support: a throwaway PostgreSQL schema per test, shared by every test suite.

Imports pytest, so only test code imports this module. The server comes from
``FLUID_TEST_DATABASE_URL`` (default: the local server's ``test`` database). When it
cannot be reached a test is skipped with the reason, except in CI (``CI=true``), where
a missing database is a failure: a skipped core path would pass silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import NoReturn

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from fluid_history.store.engine import in_schema

DEFAULT_TEST_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def server_url() -> URL:
    """The test server (and database) from ``FLUID_TEST_DATABASE_URL``."""
    return make_url(os.environ.get("FLUID_TEST_DATABASE_URL") or DEFAULT_TEST_DATABASE_URL)


@dataclass(frozen=True, slots=True)
class PostgresSchema:
    """A schema of its own on the test server, and a URL whose sessions use it.

    Sessions opened through ``url`` carry the schema's name as their ``application_name``
    (see ``in_schema``), which is how ``terminate_connections`` finds them without
    touching anyone else's sessions on a shared server.
    """

    name: str
    url: URL
    admin: AsyncConnection

    async def terminate_connections(self, *, busy_only: bool = False) -> int:
        """Cut the server sessions opened through ``url``, as a restart would.

        ``busy_only``: only those inside a statement or transaction, to hit work in flight.
        """
        result = await self.admin.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = :name"
                " AND pid <> pg_backend_pid() AND (NOT :busy_only OR state <> 'idle')"
            ),
            {"name": self.name, "busy_only": busy_only},
        )
        return int(result.scalar_one())


@asynccontextmanager
async def postgres_schema(prefix: str = "fluid_test") -> AsyncIterator[PostgresSchema]:
    """A new, empty schema for the duration of the block; dropped afterwards."""
    server = server_url()
    engine = create_async_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        try:
            admin = await engine.connect()
        except OperationalError as error:
            _unreachable(server, error)
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        try:
            await admin.execute(text(f'CREATE SCHEMA "{name}"'))
            yield PostgresSchema(name=name, url=in_schema(server, name), admin=admin)
        finally:
            await admin.close()
            # A connection of its own: a test cancelled in the middle of a statement on
            # ``admin`` leaves that one unusable.
            async with engine.connect() as dropper:
                await dropper.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        await engine.dispose()


def _unreachable(server: URL, error: Exception) -> NoReturn:
    reason = (
        f"PostgreSQL unreachable at {server.render_as_string(hide_password=True)} "
        f"(set FLUID_TEST_DATABASE_URL): {error}"
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)
