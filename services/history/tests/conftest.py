"""Fixtures shared by history's tests: run snapshots and the stores under contract test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from fluid.scheduler.run import Run
from fluid_history.store.sql import SqlRunStore
from fluid_history.testing import PostgresSchema, postgres_schema

from .support import T0, MakeRun


@asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[str | URL]:
    yield f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"


@asynccontextmanager
async def _postgresql(tmp_path: Path) -> AsyncIterator[str | URL]:
    # A fresh schema per test (FLUID_TEST_DATABASE_URL): tests never see each other's
    # runs and never touch other tables on a shared server.
    async with postgres_schema() as schema:
        yield schema.url


# One entry per database the contract suite runs on: an empty database for one test.
STORE_URLS: dict[str, Callable[[Path], AbstractAsyncContextManager[str | URL]]] = {
    "sqlite": _sqlite,
    "postgresql": _postgresql,
}


@pytest.fixture(params=sorted(STORE_URLS))
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str | URL]:
    """An empty database of each kind in turn, not migrated yet."""
    async with STORE_URLS[request.param](tmp_path) as url:
        yield url


@pytest.fixture
async def postgres() -> AsyncIterator[PostgresSchema]:
    """An empty PostgreSQL schema, for what only PostgreSQL can show."""
    async with postgres_schema() as schema:
        yield schema


@pytest.fixture
async def store(database_url: str | URL) -> AsyncIterator[SqlRunStore]:
    run_store = SqlRunStore(database_url)
    await run_store.open()
    try:
        yield run_store
    finally:
        await run_store.close()


@pytest.fixture
def make_run() -> MakeRun:
    """Builds a run snapshot: defaults for everything but what a test cares about."""

    def build(run_id: str = "run-1", **fields: Any) -> Run:
        fields.setdefault("task", "add")
        fields.setdefault("queued", T0)
        fields.setdefault("version", 1)
        return Run(id=run_id, **fields)

    return build
