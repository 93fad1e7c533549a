"""Fixtures shared by history's tests: run snapshots and the stores under contract test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from fluid.scheduler.run import Run
from fluid_history.store.sql import SqlRunStore

from .support import T0, MakeRun


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"


# One entry per database the contract suite runs on. PostgreSQL joins once its driver
# (psycopg) is a dependency: an entry reading FLUID_TEST_DATABASE_URL, failing (never
# skipping) when the server is missing, and emptying the runs table between tests.
STORE_URLS: dict[str, Callable[[Path], str]] = {"sqlite": _sqlite_url}


@pytest.fixture(params=sorted(STORE_URLS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlRunStore]:
    run_store = SqlRunStore(STORE_URLS[request.param](tmp_path))
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
