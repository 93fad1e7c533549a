"""History's metrics: how far behind the runs' changes the stored states are."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from fluid.scheduler.run import Run
from fluid.service.metrics import meter

_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600)


class IngestLag:
    """An ``on_recorded`` hook: change time of each applied state to its commit."""

    def __init__(self) -> None:
        self._lag = meter("fluid.history").create_histogram(
            "fluid.history.ingest_lag",
            unit="s",
            description="From a run's last change (end, start or queued) to its commit here",
            explicit_bucket_boundaries_advisory=_LAG_BUCKETS,
        )

    def __call__(self, applied: Sequence[Run], started_ns: int) -> None:
        now = datetime.now(UTC)
        for run in applied:
            changed = run.end or run.start or run.queued
            if changed is not None:
                self._lag.record(max((now - changed).total_seconds(), 0.0))
