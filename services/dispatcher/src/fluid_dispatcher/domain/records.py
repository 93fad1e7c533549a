"""What the dispatcher keeps besides runs: task registrations, workers and leases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fluid.scheduler.definition import TaskDefinition
from fluid.scheduler.models import WorkerKind


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """A registered task: its definition, whether operators enabled it, and the
    generation (start time) of the worker whose definition it is (None: unknown, older
    than any)."""

    definition: TaskDefinition
    enabled: bool = True
    generation: datetime | None = None

    @property
    def name(self) -> str:
        return self.definition.name


def newer(generation: datetime | None, than: datetime | None) -> bool:
    """Whether a worker generation is newer than another; unknown (None: a worker that
    did not say when it started, a task stored before generations) is older than any.
    The one rule of whose definition a task keeps (the Redis script applies it too)."""
    if generation is None:
        return False
    return than is None or generation > than


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A worker process and the tasks it can execute."""

    worker_id: str
    kind: WorkerKind
    task_names: frozenset[str]
    concurrency: int
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class Lease:
    """A running run's hold by a worker until ``deadline``."""

    run_id: str
    worker_id: str
    attempt: int
    deadline: datetime
    # Set by an external abort: the worker learns it on its next heartbeat.
    abort_reason: str | None = None
