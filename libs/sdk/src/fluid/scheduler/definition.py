"""What the system knows about a task without its code: the registered definition."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .models import DEFAULT_TIMEOUT_SECONDS, RetryPolicy, TaskPriority
from .schedules import Scheduler
from .task import Task


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskDefinition:
    """A task as workers register it with the dispatcher: everything but the function."""

    name: str
    module: str = ""
    short_description: str = ""
    description: str = ""
    cpu_bound: bool = False
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_concurrency: int = 0
    max_queued: int = 0
    priority: TaskPriority = TaskPriority.medium
    retry: RetryPolicy | None = None
    rate_limit_retry: RetryPolicy | None = None
    tags: frozenset[str] = frozenset()
    params_schema: dict[str, Any] = field(default_factory=dict)
    schedule: Scheduler | None = None

    @classmethod
    def of(cls, task: Task) -> TaskDefinition:
        """What a worker registers for ``task``: all but its function, ``randomize``,
        ``k8s_config`` and ``env`` (they stay with the worker), its params model as JSON Schema."""
        # Every field but the schema is the task's attribute of the same name: a field
        # added to both travels without being listed here.
        copied = {
            item.name: getattr(task, item.name)
            for item in fields(cls)
            if item.name != "params_schema"
        }
        return cls(**copied, params_schema=task.params_schema())


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A registered task: its definition, whether operators enabled it, and the live
    workers that execute it and the runs they hold now."""

    definition: TaskDefinition
    enabled: bool = True
    workers: int = 0
    running: int = 0

    @property
    def name(self) -> str:
        """The registered task's name (``definition.name``)."""
        return self.definition.name
