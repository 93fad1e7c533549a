"""What the scheduler knows about a task and what it remembers between leaders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fluid.scheduler.schedules import Scheduler


@dataclass(frozen=True, slots=True)
class ScheduledTask:
    """A registered task that has a schedule, as the dispatcher lists it."""

    name: str
    schedule: Scheduler
    enabled: bool = True
    # The task's ``randomize`` callable, known only when this process imported the task
    # module: a function does not travel in a registration.
    randomize: Callable[[], float] | None = None


@dataclass(frozen=True, slots=True)
class SlotRecord:
    """A task's progress through its slots, kept in the store so a new leader goes on.

    ``cursor`` is the latest slot dealt with: fired, skipped as missed, or passed while
    the task was disabled. Only slots after it can fire. ``last_slot`` and
    ``last_run_id`` name the latest slot a run was actually queued for.
    """

    cursor: datetime
    last_slot: datetime | None = None
    last_run_id: str = ""
