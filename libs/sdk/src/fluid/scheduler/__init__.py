"""fluid.scheduler: write tasks, queue them, query their runs.

``Client`` and ``RunPage`` load on first use: they pull in grpc, channels and settings,
which a task module (and the fresh interpreter a cpu-bound run starts in) never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .definition import TaskDefinition, TaskInfo
from .errors import (
    FailedPreconditionError,
    FluidError,
    InvalidArgumentError,
    NotFoundError,
    RunTimeoutError,
    UnavailableError,
)
from .lifecycle import TaskManager, TaskManagerPlugin
from .models import (
    InvalidTransition,
    RetryPolicy,
    RunError,
    RunRequest,
    TaskPriority,
    TaskState,
)
from .run import Run
from .schedules import Scheduler, crontab, every
from .task import AnyParams, Task, TaskAbortedError, TaskContext, TaskRun, task

if TYPE_CHECKING:
    from .client import Client, RunPage

_CLIENT_NAMES = frozenset({"Client", "RunPage"})


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AnyParams",
    "Client",
    "FailedPreconditionError",
    "FluidError",
    "InvalidArgumentError",
    "InvalidTransition",
    "NotFoundError",
    "RetryPolicy",
    "Run",
    "RunError",
    "RunPage",
    "RunRequest",
    "RunTimeoutError",
    "Scheduler",
    "Task",
    "TaskAbortedError",
    "TaskContext",
    "TaskDefinition",
    "TaskInfo",
    "TaskManager",
    "TaskManagerPlugin",
    "TaskPriority",
    "TaskRun",
    "TaskState",
    "UnavailableError",
    "crontab",
    "every",
    "task",
]
