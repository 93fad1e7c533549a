"""Stopping a service's background loops reliably."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], retry_every: float = 1.0) -> None:
    """Cancel background loops and return once every one of them has ended.

    One cancellation is not always enough: on Python 3.11 a cancellation arriving just as
    an ``asyncio.timeout()`` deadline expires comes out as ``TimeoutError``, which a retry
    loop's ``except Exception`` catches and carries on (seen as a scheduler that never
    stopped). Such a loop is cancelled again until it ends.
    """
    every = list(tasks)
    pending = {task for task in every if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry_every)
    # Collect the outcomes so no exception is reported as never retrieved.
    await asyncio.gather(*every, return_exceptions=True)
