"""Retention: runs queued longer ago than the configured number of days are deleted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from fluid.scheduler.errors import UnavailableError
from fluid.scheduler.run import utcnow

from .ports import ExpiringStore

logger = logging.getLogger("fluid.history.retention")


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
    ) -> None:
        if days <= 0:
            raise ValueError("retention needs a positive number of days (0 means keep all)")
        self._store = store
        self._keep = timedelta(days=days)
        self._batch_size = batch_size
        self._interval = interval
        self._clock = clock

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
        """Purge now and then every ``interval`` seconds, until cancelled."""
        while True:
            try:
                deleted = await self.purge()
            except UnavailableError as error:
                # The database is away: the next pass deletes what this one could not.
                logger.warning("history retention skipped a pass: %s", error)
            except Exception:
                # Keep the loop alive: expired runs must not pile up after one odd failure.
                logger.exception("history retention pass failed")
            else:
                if deleted:
                    logger.info("history retention deleted %d runs", deleted)
            await asyncio.sleep(self._interval)
