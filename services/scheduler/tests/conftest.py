"""Fixtures of the scheduler's tests: the stores under the contract suite.

``servers`` and ``process_helpers`` are the repository's shared test helpers (tests/);
worker processes import ``slot_tasks`` from this folder through PYTHONPATH.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

SHARED = Path(__file__).parents[3] / "tests"
if str(SHARED) not in sys.path:
    sys.path.insert(0, str(SHARED))

from fluid_scheduler.domain.ports import SchedulerStore  # noqa: E402
from fluid_scheduler.store.memory import MemorySchedulerStore  # noqa: E402
from fluid_scheduler.store.redis import RedisSchedulerStore  # noqa: E402

from servers import redis_url  # noqa: E402  (importable once tests/ is on the path)


@asynccontextmanager
async def memory_store() -> AsyncIterator[SchedulerStore]:
    store = MemorySchedulerStore()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def redis_store() -> AsyncIterator[SchedulerStore]:
    # Its own namespace per test: tests never see each other's lease or records.
    store = RedisSchedulerStore(redis_url(), namespace=f"test-{uuid.uuid4().hex[:12]}")
    try:
        yield store
    finally:
        await store.clear()
        await store.close()


# One entry per store implementation; each runs the whole contract suite.
STORE_FACTORIES: dict[str, Callable[[], AbstractAsyncContextManager[SchedulerStore]]] = {
    "memory": memory_store,
    "redis": redis_store,
}


@pytest.fixture(params=sorted(STORE_FACTORIES))
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SchedulerStore]:
    """An empty scheduler store of each kind in turn."""
    async with STORE_FACTORIES[request.param]() as opened:
        yield opened
