"""The scheduler's metric: how late each slot's run was accepted by the dispatcher."""

from __future__ import annotations

from fluid.service.metrics import meter

_LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 10)


class LatenessMetric:
    def __init__(self) -> None:
        self._histogram = meter("fluid.scheduler").create_histogram(
            "fluid.schedule.lateness",
            unit="s",
            description="Slot time to the slot's run accepted by the dispatcher",
            explicit_bucket_boundaries_advisory=_LATENESS_BUCKETS,
        )

    def record(self, task: str, seconds: float) -> None:
        self._histogram.record(seconds, {"fluid.task": task})
