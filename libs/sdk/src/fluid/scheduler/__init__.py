"""fluid.scheduler: write tasks, queue them, query their runs.

``Client``, ``RunPage`` and the task managers load on first use: they pull in grpc,
channels, settings and the execution runtime, which a task module never needs.
"""

from __future__ import annotations

import importlib
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
from .lifecycle import Event
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
    from .http import task_manager_fastapi
    from .manager import (
        DepsProvider,
        TaskConsumer,
        TaskManager,
        TaskManagerConfig,
        TaskManagerPlugin,
        TaskScheduler,
        provide_deps,
    )

_LAZY = {
    "Client": "client",
    "RunPage": "client",
    "DepsProvider": "manager",
    "TaskConsumer": "manager",
    "TaskManager": "manager",
    "TaskManagerConfig": "manager",
    "TaskManagerPlugin": "manager",
    "TaskScheduler": "manager",
    "provide_deps": "manager",
    "task_manager_fastapi": "http",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AnyParams",
    "Client",
    "DepsProvider",
    "Event",
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
    "TaskConsumer",
    "TaskContext",
    "TaskDefinition",
    "TaskInfo",
    "TaskManager",
    "TaskManagerConfig",
    "TaskManagerPlugin",
    "TaskPriority",
    "TaskRun",
    "TaskScheduler",
    "TaskState",
    "UnavailableError",
    "crontab",
    "every",
    "provide_deps",
    "task",
    "task_manager_fastapi",
]
