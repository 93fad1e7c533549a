"""What the dispatcher keeps besides runs: task registrations, workers and leases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fluid.scheduler.definition import TaskDefinition
from fluid.scheduler.models import WorkerKind


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """A registered task: its definition and whether operators enabled it."""

    definition: TaskDefinition
    enabled: bool = True

    @property
    def name(self) -> str:
        return self.definition.name


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
