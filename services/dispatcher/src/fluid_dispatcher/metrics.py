"""The dispatcher's metrics: queue depth, finished runs, durations, waits, expiries.

Recorded through the OpenTelemetry API (no-ops until the host installs a provider) and
exported for Prometheus by fluid.service.metrics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from fluid.scheduler.models import TaskPriority
from fluid.scheduler.run import Run
from fluid.service.metrics import meter

# Durations from no-op runs (milliseconds) to long batch jobs (an hour).
_SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600)


class _LastCount:
    """A gauge of the count last set: observation callbacks run synchronously, so they
    cannot ask the (async) store; housekeeping sets the count from it now and then."""

    def __init__(self, instruments: Meter, name: str, unit: str, description: str) -> None:
        self.count = 0
        instruments.create_observable_gauge(
            name, callbacks=[self._observe], unit=unit, description=description
        )

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self.count)]


class DispatcherMetrics:
    def __init__(self) -> None:
        instruments = meter("fluid.dispatcher")
        self._depths: Mapping[TaskPriority, int] = {}
        instruments.create_observable_gauge(
            "fluid.queue.depth",
            callbacks=[self._observe_depths],
            unit="{run}",
            description="Runs waiting in the queue, by priority",
        )
        self._dead_letters = _LastCount(
            instruments,
            "fluid.dead_letters",
            unit="{snapshot}",
            description="Run snapshots history refused, kept as dead letters",
        )
        self._outbox_pending = _LastCount(
            instruments,
            "fluid.outbox.pending",
            unit="{snapshot}",
            description="Run snapshots not yet delivered to history (forwarder lag)",
        )
        self._finished = instruments.create_counter(
            "fluid.runs.finished", unit="{run}", description="Runs that reached a final state"
        )
        self._duration = instruments.create_histogram(
            "fluid.run.duration",
            unit="s",
            description="Start to end of a run's last attempt",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._queue_wait = instruments.create_histogram(
            "fluid.run.queue_wait",
            unit="s",
            description="Due time (queued or execute_after) to lease of an attempt",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._expired = instruments.create_counter(
            "fluid.leases.expired", unit="{lease}", description="Leases that ran out unrenewed"
        )
        self._rate_limited = instruments.create_counter(
            "fluid.runs.rate_limited",
            unit="{run}",
            description="Runs refused at lease time because their task was at max_concurrency",
        )

    def _observe_depths(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, {"priority": str(priority)})
            for priority, count in self._depths.items()
        ]

    def queue_depths(self, depths: Mapping[TaskPriority, int]) -> None:
        self._depths = depths

    def dead_letters(self, count: int) -> None:
        self._dead_letters.count = count

    def outbox_pending(self, count: int) -> None:
        self._outbox_pending.count = count

    def leased(self, run: Run) -> None:
        due = run.execute_after or run.queued
        if run.start is not None and due is not None:
            wait = max((run.start - due).total_seconds(), 0.0)
            self._queue_wait.record(wait, {"fluid.task": run.task})

    def rate_limited(self, task: str) -> None:
        self._rate_limited.add(1, {"fluid.task": task})

    def changed(self, run: Run) -> None:
        """Record a run's new version: finished runs count, with their duration."""
        if not run.is_done:
            return
        labels = {"fluid.task": run.task, "fluid.state": str(run.state)}
        self._finished.add(1, labels)
        if run.duration is not None:
            self._duration.record(run.duration, labels)

    def lease_expired(self, run: Run) -> None:
        self._expired.add(1, {"fluid.task": run.task})
