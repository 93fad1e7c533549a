"""The history use cases: record run snapshots, list runs, get one run."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from fluid.scheduler.errors import InvalidArgumentError, NotFoundError
from fluid.scheduler.run import Run, utcnow

from .query import RunPage, RunQuery
from .snapshots import storable, validate_snapshots

if TYPE_CHECKING:
    from fluid_history.store.base import RunStore

RecordedHook = Callable[[Sequence[Run], int], None]
"""Told the snapshots a committed batch applied and when (ns since epoch) the write began."""


class RunHistory:
    """What the history service does, independent of gRPC and of the database."""

    def __init__(
        self,
        store: RunStore,
        *,
        on_recorded: Sequence[RecordedHook] = (),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._on_recorded = tuple(on_recorded)
        self._clock = clock

    async def record(self, runs: Sequence[Run]) -> int:
        """Store the snapshots newer than what is stored; return how many were applied."""
        validate_snapshots(runs)
        snapshots = storable(runs, self._clock())
        if not snapshots:
            return 0
        started_ns = time.time_ns()
        applied = await self._store.record(snapshots)
        for hook in self._on_recorded:
            hook(applied, started_ns)
        return len(applied)

    async def list_runs(self, query: RunQuery) -> RunPage:
        return await self._store.list_runs(query)

    async def get_run(self, run_id: str) -> Run:
        if not run_id:
            raise InvalidArgumentError("run_id: required")
        run = await self._store.get_run(run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} not found")
        return run
