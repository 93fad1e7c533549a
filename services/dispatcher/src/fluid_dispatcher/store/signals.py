"""Wake-ups shared by the stores' long polls and watches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable

from fluid.scheduler.run import Run

from ..domain.ports import WorkTicket


class Signal:
    """Wakes every current waiter at once (a one-shot event replaced on each fire)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def ticket(self) -> WorkTicket:
        return self._event

    @staticmethod
    async def wait(ticket: WorkTicket, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ticket.wait(), timeout=max(timeout, 0))


async def newer_versions(
    run: Run, update: Callable[[], Awaitable[Run | None]]
) -> AsyncGenerator[Run, None]:
    """``run``, then each ``update()`` newer than the last one yielded, until one is done
    or ``update()`` says None (no more): what ``QueueStore.watch`` promises, given how a
    store hears of changes. An update no newer (a repeat, or one overtaken) is skipped."""
    yield run
    while not run.is_done:
        latest = await update()
        if latest is None:
            return
        if latest.version > run.version:
            run = latest
            yield run
