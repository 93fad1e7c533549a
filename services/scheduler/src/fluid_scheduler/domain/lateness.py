"""Slot lateness: how long after its slot a run was accepted by the dispatcher.

The most recent samples are kept in memory and summarised on demand (ListSchedules, the
periodic log line); OpenTelemetry metrics can read the same window later.
"""

from __future__ import annotations

from collections import deque

from fluid.scheduler.status import SlotLateness

WINDOW = 10_000


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class LatenessWindow:
    """The last ``size`` lateness samples, in seconds."""

    def __init__(self, size: int = WINDOW) -> None:
        self._samples: deque[float] = deque(maxlen=size)

    def record(self, seconds: float) -> None:
        self._samples.append(seconds)

    def summary(self) -> SlotLateness:
        if not self._samples:
            return SlotLateness()
        ordered = sorted(self._samples)
        return SlotLateness(
            count=len(ordered),
            p50=percentile(ordered, 0.5),
            p99=percentile(ordered, 0.99),
            max=ordered[-1],
        )

    def drain(self) -> SlotLateness:
        """The summary of the samples so far, then an empty window (periodic log line)."""
        summary = self.summary()
        self._samples.clear()
        return summary
