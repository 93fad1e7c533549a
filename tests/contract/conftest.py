"""The queue stores held to the QueueStore contract in test_queue_store.py.

Every entry of ``STORE_FACTORIES`` runs the whole suite. A store joins by adding one
line: its name and an async context manager that opens an empty store (with or without
the history outbox) and closes it, and empties whatever it shares with other tests.
A store whose server is missing must fail its tests, never skip them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import pytest

from fluid_dispatcher.domain.ports import QueueStore
from fluid_dispatcher.store.memory import MemoryQueueStore
from fluid_dispatcher.store.redis import RedisQueueStore

from servers import redis_url


class StoreFactory(Protocol):
    """Opens a fresh, empty store of one implementation."""

    def __call__(self, *, outbox: bool) -> AbstractAsyncContextManager[QueueStore]: ...


@asynccontextmanager
async def memory_store(*, outbox: bool) -> AsyncIterator[QueueStore]:
    queue_store = MemoryQueueStore(outbox=outbox)
    try:
        yield queue_store
    finally:
        await queue_store.close()


@asynccontextmanager
async def redis_store(*, outbox: bool) -> AsyncIterator[QueueStore]:
    # Each test gets its own namespace (hash tag), so tests never see each other's keys.
    queue_store = RedisQueueStore(
        redis_url(), namespace=f"test-{uuid.uuid4().hex[:12]}", outbox=outbox
    )
    try:
        yield queue_store
    finally:
        await queue_store.delete_namespace()
        await queue_store.close()


STORE_FACTORIES: dict[str, StoreFactory] = {
    "memory": memory_store,
    "redis": redis_store,
}


@pytest.fixture(params=sorted(STORE_FACTORIES))
async def store(request: pytest.FixtureRequest) -> AsyncIterator[QueueStore]:
    """An empty store that keeps an outbox for history, as the dispatcher runs it."""
    async with STORE_FACTORIES[request.param](outbox=True) as queue_store:
        yield queue_store


@pytest.fixture(params=sorted(STORE_FACTORIES))
async def store_without_outbox(request: pytest.FixtureRequest) -> AsyncIterator[QueueStore]:
    """An empty store built for a deployment without a history service."""
    async with STORE_FACTORIES[request.param](outbox=False) as queue_store:
        yield queue_store
