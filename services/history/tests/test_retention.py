"""The retention loop reports its health like every background loop, and backs off."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fluid.scheduler.errors import UnavailableError
from fluid.service.loops import LoopHealth
from fluid_history.domain.retention import RETENTION_LOOP, Retention


class _FailingStore:
    """An expiring store whose deletes raise the errors given, in order, then succeed.

    Each delete is announced on ``deletes``; it runs without suspending, so once the test
    has heard of it the loop has also reported how that pass went.
    """

    def __init__(self, *failures: Exception) -> None:
        self._failures = list(failures)
        self.deletes: asyncio.Queue[None] = asyncio.Queue()

    async def delete_queued_before(self, cutoff: datetime, limit: int) -> int:
        self.deletes.put_nowait(None)
        if self._failures:
            raise self._failures.pop(0)
        return 0


async def test_a_failing_retention_pass_is_a_degraded_loop_retried_after_a_back_off() -> None:
    store = _FailingStore(UnavailableError("history database unreachable"), RuntimeError("bug"))
    health = LoopHealth()
    # An hour between passes: only the back-off can bring the passes that follow a failure.
    retention = Retention(store, days=1, batch_size=10, interval=3600, health=health)
    loop = asyncio.create_task(retention.run())
    try:
        async with asyncio.timeout(5):
            await store.deletes.get()
            [failing] = health.degraded()
            assert failing.name == RETENTION_LOOP
            assert failing.error == "UnavailableError: history database unreachable"
            await store.deletes.get()
            [still] = health.degraded()
            assert (still.error, still.since) == ("RuntimeError: bug", failing.since)
            await store.deletes.get()
            assert health.degraded() == ()
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


def test_the_retention_loop_reports_as_history_by_default() -> None:
    retention = Retention(_FailingStore(), days=1, batch_size=10, interval=3600)
    assert retention.health.owner == "history"
