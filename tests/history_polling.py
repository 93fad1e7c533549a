"""Waiting for history: the dispatcher forwards states asynchronously, by design."""

from __future__ import annotations

import asyncio

from fluid.scheduler import Client, NotFoundError, Run, TaskState


async def stored_run(client: Client, run_id: str, state: TaskState, attempts: int = 100) -> Run:
    """The run as history stores it once it reached ``state`` (bounded polling)."""
    last: Run | None = None
    for _ in range(attempts):
        try:
            last = await client.get_stored_run(run_id)
        except NotFoundError:
            last = None
        if last is not None and last.state is state:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"history has {last!r} for run {run_id}, expected state {state}")
