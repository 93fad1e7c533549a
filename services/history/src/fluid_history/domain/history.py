"""The history use cases: record run snapshots, list runs, get one run."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from fluid.scheduler.errors import InvalidArgumentError, NotFoundError
from fluid.scheduler.run import Run, utcnow

from .ports import RunStore
from .query import RunPage, RunQuery
from .snapshots import RecordResult, RefusedSnapshot, refuse_invalid, storable

RecordedHook = Callable[[Sequence[Run], int], None]
"""Told the snapshots a committed batch applied and when (ns since epoch) the write began."""

logger = logging.getLogger("fluid.history")


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

    async def record(
        self, runs: Sequence[Run], *, unreadable: Sequence[RefusedSnapshot] = ()
    ) -> RecordResult:
        """Store the snapshots newer than what is stored; refuse, one by one, those that
        cannot be stored, and store the others all the same.

        ``unreadable``: snapshots of the same batch the caller could not even decode,
        reported (and logged) with the rest.
        """
        valid, invalid = refuse_invalid(runs)
        result = RecordResult(refused=(*unreadable, *invalid))
        snapshots = storable(valid, self._clock())
        if snapshots:
            started_ns = time.time_ns()
            stored = await self._store.record(snapshots)
            for hook in self._on_recorded:
                hook(stored.applied, started_ns)
            result += stored
        # The caller moves on past a refused snapshot (sent again, it would be refused
        # again), so this line is what is left of a run state history never stored.
        for refusal in result.refused:
            logger.warning(
                "history refused run %r version %d: %s",
                refusal.run_id,
                refusal.version,
                refusal.reason,
            )
        return result

    async def list_runs(self, query: RunQuery) -> RunPage:
        return await self._store.list_runs(query)

    async def get_run(self, run_id: str) -> Run:
        if not run_id:
            raise InvalidArgumentError("run_id: required")
        run = await self._store.get_run(run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} not found")
        return run
