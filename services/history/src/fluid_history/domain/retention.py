"""Retention: runs queued longer ago than the configured number of days are deleted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from fluid.scheduler.run import utcnow
from fluid.service.loops import Backoff, LoopHealth

from .ports import ExpiringStore

logger = logging.getLogger("fluid.history.retention")

RETENTION_LOOP = "history-retention"


class Retention:
    """Deletes expired runs in batches, now (``purge``) or periodically (``run``)."""

    def __init__(
        self,
        store: ExpiringStore,
        *,
        days: float,
        batch_size: int,
        interval: float,
        clock: Callable[[], datetime] = utcnow,
        health: LoopHealth | None = None,
    ) -> None:
        if days <= 0:
            raise ValueError("retention needs a positive number of days (0 means keep all)")
        self._store = store
        self._keep = timedelta(days=days)
        self._batch_size = batch_size
        self._interval = interval
        self._clock = clock
        # The loop reports here like every background loop: a failing pass shows as a
        # degraded loop (the fluid.loops.degraded metric), logged once per incident.
        self.health = health or LoopHealth(owner="history")

    async def purge(self) -> int:
        """Delete every run queued before now minus the retention; return how many."""
        cutoff = self._clock() - self._keep
        deleted = 0
        while True:
            batch = await self._store.delete_queued_before(cutoff, self._batch_size)
            deleted += batch
            # A short batch means nothing older is left (runs queued since are newer).
            if batch < self._batch_size:
                return deleted

    async def run(self) -> None:
        """Purge now and then every ``interval`` seconds, until cancelled; a failed pass
        is tried again after a back-off, not an interval later."""
        backoff = Backoff()
        while True:
            try:
                deleted = await self.purge()
            except Exception as error:
                # Keep the loop alive: expired runs must not pile up after one odd failure
                # (or a database away for a while).
                self.health.failed(RETENTION_LOOP, error)
                await backoff.sleep()
                continue
            self.health.ok(RETENTION_LOOP)
            backoff.reset()
            if deleted:
                logger.info("history retention deleted %d runs", deleted)
            await asyncio.sleep(self._interval)
