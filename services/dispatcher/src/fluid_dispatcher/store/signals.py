"""Wake-ups shared by the stores' long polls."""

from __future__ import annotations

import asyncio
import contextlib

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
