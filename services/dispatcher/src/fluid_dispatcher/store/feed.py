"""Subscribers to every run change a store hears (``QueueStore.watch_changes``).

A notification feed, not a log: each subscriber has a bounded queue, and one that falls
that far behind (or a store that lost changes, a Redis subscription cut) ends its stream,
so a slow reader costs memory up to the bound and never blocks a writer. History is the
record of every state; this is for watching them happen.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fluid.scheduler.errors import ResourceExhaustedError
from fluid.scheduler.run import Run

# Changes a subscriber may lag behind before its stream ends.
FEED_BACKLOG = 10_000
# Subscribers of one store (one dispatcher replica) at once.
MAX_FEED_SUBSCRIBERS = 100


class ChangeFeed:
    """Fan-out of run changes to bounded subscriber queues."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Run | None]] = set()

    def __len__(self) -> int:
        return len(self._queues)

    def publish(self, run: Run) -> None:
        for queue in list(self._queues):
            if queue.qsize() >= FEED_BACKLOG:
                # Too far behind: end its stream (it may subscribe again).
                self._queues.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(run)

    def close(self) -> None:
        """End every subscriber's stream (changes were lost, or the store closes)."""
        for queue in self._queues:
            queue.put_nowait(None)
        self._queues.clear()

    def add(self) -> asyncio.Queue[Run | None]:
        """A new subscriber's queue (``ResourceExhaustedError`` past the limit)."""
        if len(self._queues) >= MAX_FEED_SUBSCRIBERS:
            raise ResourceExhaustedError(
                f"{MAX_FEED_SUBSCRIBERS} streams of run changes are open on this dispatcher"
            )
        queue: asyncio.Queue[Run | None] = asyncio.Queue()
        self._queues.add(queue)
        return queue

    def remove(self, queue: asyncio.Queue[Run | None]) -> None:
        self._queues.discard(queue)


async def drain(queue: asyncio.Queue[Run | None]) -> AsyncIterator[Run]:
    """The runs a subscriber's queue receives, until the feed ends it."""
    while (run := await queue.get()) is not None:
        yield run
