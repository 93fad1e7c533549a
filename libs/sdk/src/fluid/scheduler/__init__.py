"""fluid.scheduler: write tasks, queue them, query their runs."""

from .client import Client, RunPage
from .definition import TaskDefinition
from .errors import (
    FailedPreconditionError,
    FluidError,
    InvalidArgumentError,
    NotFoundError,
    RunTimeoutError,
    UnavailableError,
)
from .models import InvalidTransition, RetryPolicy, RunError, TaskInfo, TaskPriority, TaskState
from .run import Run
from .schedules import Scheduler, crontab, every
from .task import AnyParams, Task, TaskAbortedError, TaskContext, TaskRun, task

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
    "RunTimeoutError",
    "Scheduler",
    "Task",
    "TaskAbortedError",
    "TaskContext",
    "TaskDefinition",
    "TaskInfo",
    "TaskPriority",
    "TaskRun",
    "TaskState",
    "UnavailableError",
    "crontab",
    "every",
    "task",
]
