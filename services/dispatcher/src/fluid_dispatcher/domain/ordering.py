"""Queue order: priority first, due time second, with ageing so nothing starves.

A ready run's score is its due time plus a penalty for its priority; the lowest score
is leased first. Runs that became due at about the same time are served high, then
medium, then low, FIFO within a priority. A low run that has waited longer than its
penalty beats any higher-priority run that became due after it, so under a steady flood
of high-priority work a low run waits at most ``LOW_PENALTY`` seconds more than it
would in an idle queue: no starvation, and the order stays O(log n) to maintain.
"""

from __future__ import annotations

from datetime import datetime

from fluid.scheduler.models import TaskPriority

HIGH_PENALTY = 0.0
MEDIUM_PENALTY = 10.0
LOW_PENALTY = 60.0

PRIORITY_PENALTY_SECONDS = {
    TaskPriority.high: HIGH_PENALTY,
    TaskPriority.medium: MEDIUM_PENALTY,
    TaskPriority.low: LOW_PENALTY,
}


def ready_score(priority: TaskPriority, due: datetime) -> float:
    """Lease order of a run that became due at ``due`` (lower is served first)."""
    return due.timestamp() + PRIORITY_PENALTY_SECONDS[priority]
