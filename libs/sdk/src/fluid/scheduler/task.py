"""The ``@task`` decorator, the ``Task`` it builds and the ``TaskRun`` context a run receives."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, cast, get_args, get_origin, overload

from pydantic import BaseModel, ConfigDict
from typing_extensions import TypeVar

from .common import is_in_cpu_process
from .models import DEFAULT_TIMEOUT_SECONDS, RetryPolicy, TaskPriority
from .schedules import Scheduler

if TYPE_CHECKING:
    from .run import Run


class AnyParams(BaseModel):
    """Params of a task that declares no model: any keyword is kept.

    Supports ``ctx.params["key"]`` as well as attribute access, as seed examples do.
    """

    model_config = ConfigDict(extra="allow")

    def __getitem__(self, key: str) -> Any:
        extra = self.model_extra or {}
        if key in extra:
            return extra[key]
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        """The param ``key`` as ``dict.get`` gives it: ``default`` when the run was not given it."""
        return (self.model_extra or {}).get(key, default)


ParamsT = TypeVar("ParamsT", bound=BaseModel, default=AnyParams)
DepsT = TypeVar("DepsT", default=Any)

TaskExecutor = Callable[["TaskRun[Any, Any]"], Awaitable[Any]]


class TaskAbortedError(Exception):
    """Raised by ``ctx.abort()``: the run ends ``aborted`` and is never retried."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class RunManager(Protocol):
    """What a run sees of its task manager (``fluid.scheduler.TaskManager`` is one)."""

    deps: Any

    def queue_run(
        self,
        task: str | Task,
        params: Mapping[str, Any],
        *,
        priority: TaskPriority | None = None,
        from_run_id: str = "",
    ) -> Awaitable[Run]:
        """Queue one run of ``task`` (a child of ``from_run_id`` when set); the run as queued."""
        ...

    def queue(
        self, task: str | Task, priority: TaskPriority | None = None, **params: Any
    ) -> asyncio.Task[Run]:
        """Queue a run now, awaited or not (inside a run, a child of it)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """A task: an async function plus how the system runs it."""

    executor: TaskExecutor
    name: str
    module: str
    params_model: type[BaseModel]
    short_description: str = ""
    description: str = ""
    schedule: Scheduler | None = None
    randomize: Callable[[], float] | None = None
    max_concurrency: int = 0
    # Runs waiting at most (0: unlimited): past it queueing answers RESOURCE_EXHAUSTED,
    # so a producer faster than the workers meets back-pressure instead of a full store.
    max_queued: int = 0
    priority: TaskPriority = TaskPriority.medium
    cpu_bound: bool = False
    k8s_config: Mapping[str, Any] | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    tags: frozenset[str] = frozenset()
    retry: RetryPolicy | None = None
    rate_limit_retry: RetryPolicy | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a task needs a name")
        if self.timeout_seconds <= 0:
            raise ValueError(f"task {self.name}: timeout_seconds must be positive")
        if self.max_concurrency < 0:
            raise ValueError(f"task {self.name}: max_concurrency must be >= 0")
        if self.max_queued < 0:
            raise ValueError(f"task {self.name}: max_queued must be >= 0")

    @property
    def runs_in_subprocess(self) -> bool:
        """A cpu_bound task leaves the event loop, except inside its own subprocess."""
        return self.cpu_bound and not is_in_cpu_process()

    def params_schema(self) -> dict[str, Any]:
        """The JSON Schema of the params model, as the task registers it with the dispatcher."""
        return self.params_model.model_json_schema()

    def validate_params(self, params: Mapping[str, Any]) -> BaseModel:
        """``params`` parsed by the params model (pydantic's ``ValidationError`` if invalid)."""
        return self.params_model.model_validate(dict(params))

    def __str__(self) -> str:
        return self.name


class TaskRun(Generic[ParamsT, DepsT]):
    """The context a run's function receives: its params, id, task, logger, task manager
    and queue."""

    __slots__ = ("_children", "_manager", "logger", "params", "run", "task")

    def __init__(self, *, run: Run, task: Task, params: ParamsT, task_manager: RunManager) -> None:
        self.run = run
        self.task = task
        self.params = params
        self._manager = task_manager
        self._children: list[asyncio.Future[Run]] = []
        self.logger = logging.LoggerAdapter(
            logging.getLogger(f"fluid.task.{task.name}"), {"run_id": run.id, "task": task.name}
        )

    @property
    def id(self) -> str:
        """The id of the run being executed (every retry keeps it)."""
        return self.run.id

    @property
    def name(self) -> str:
        """The name of the task being run."""
        return self.task.name

    @property
    def attempt(self) -> int:
        """0 for the first execution, ``n`` for retry ``n`` (rate-limit retries count apart)."""
        return self.run.attempt

    @property
    def priority(self) -> TaskPriority:
        """The priority the run was queued with."""
        return self.run.priority

    @property
    def root_run_id(self) -> str:
        """The id of the top-level run this chain of child runs started from (this run's own
        id when it has no parent)."""
        return self.run.root_run_id or self.run.id

    @property
    def task_manager(self) -> RunManager:
        """The task manager executing this run (in a service, one bound to the system)."""
        return self._manager

    @property
    def deps(self) -> DepsT:
        """The task manager's ``deps``, typed as the ``D`` of ``TaskRun[P, D]``."""
        return cast(DepsT, self._manager.deps)

    def abort(self, reason: str = "") -> None:
        """Stop the run deliberately: it ends ``aborted`` and is never retried."""
        raise TaskAbortedError(reason)

    def queue(
        self, task: str | Task, priority: TaskPriority | None = None, **params: Any
    ) -> asyncio.Task[Run]:
        """Queue a child run now, awaited or not; awaiting the answer gives the child run.

        This run's report waits for the call to finish, and fails if it failed."""
        child = asyncio.ensure_future(
            self._manager.queue_run(task, params, priority=priority, from_run_id=self.run.id)
        )
        self.adopt(child)
        return child

    def adopt(self, queued: asyncio.Future[Run]) -> None:
        """Make this run's report wait for ``queued``, a queue call it started."""
        self._children.append(queued)

    async def children_queued(self) -> list[BaseException]:
        """Wait for the queue calls this run started; the errors of those that failed."""
        outcomes = await asyncio.gather(*self._children, return_exceptions=True)
        return [outcome for outcome in outcomes if isinstance(outcome, BaseException)]

    def __repr__(self) -> str:
        return f"TaskRun(task={self.task.name!r}, id={self.run.id!r})"


TaskContext = TaskRun
"""Older seed name of ``TaskRun``."""

current_task_run: contextvars.ContextVar[TaskRun[Any, Any] | None] = contextvars.ContextVar(
    "fluid_current_task_run", default=None
)
"""The run whose function is executing: ``TaskManager.queue`` makes its queues children."""


def params_model_of(executor: Callable[..., Any]) -> type[BaseModel]:
    """The ``P`` of the first parameter annotated ``TaskRun[P]`` (``AnyParams`` otherwise)."""
    try:
        hints = inspect.get_annotations(executor, eval_str=True)
    except NameError:
        hints = inspect.get_annotations(executor)
    for name in inspect.signature(executor).parameters:
        annotation = hints.get(name)
        if annotation is None:
            break
        if get_origin(annotation) is TaskRun:  # type: ignore[comparison-overlap]
            args = get_args(annotation)
            # BaseModel itself (``TaskRun[BaseModel, Deps]``) declares no fields: any params.
            if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
                return AnyParams if args[0] is BaseModel else args[0]
        break
    return AnyParams


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else ""


def _build_task(executor: TaskExecutor, **options: Any) -> Task:
    if not inspect.iscoroutinefunction(executor):
        raise TypeError(f"@task needs an async function, got {executor!r}")
    doc = inspect.getdoc(executor) or ""
    tags = options.pop("tags", ()) or ()
    env = options.pop("env", None) or {}
    priority = options.pop("priority", None) or TaskPriority.medium
    return Task(
        executor=executor,
        name=options.pop("name", None) or executor.__name__,
        module=executor.__module__,
        params_model=params_model_of(executor),
        short_description=options.pop("short_description", None) or _first_line(doc),
        description=options.pop("description", None) or doc,
        tags=frozenset(tags),
        env=dict(env),
        priority=TaskPriority(priority),
        **options,
    )


@overload
def task(executor: TaskExecutor, /) -> Task: ...


@overload
def task(
    *,
    name: str | None = None,
    schedule: Scheduler | None = None,
    short_description: str | None = None,
    description: str | None = None,
    randomize: Callable[[], float] | None = None,
    max_concurrency: int = 0,
    max_queued: int = 0,
    priority: TaskPriority | None = None,
    cpu_bound: bool = False,
    k8s_config: Mapping[str, Any] | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    tags: tuple[str, ...] | list[str] | frozenset[str] = (),
    retry: RetryPolicy | None = None,
    rate_limit_retry: RetryPolicy | None = None,
    env: Mapping[str, str] | None = None,
) -> Callable[[TaskExecutor], Task]: ...


def task(
    executor: TaskExecutor | None = None, /, **options: Any
) -> Task | Callable[[TaskExecutor], Task]:
    """Make an async function a task: ``@task``, ``@task()`` (as the seed's db plugin docs
    write it) or ``@task(name=..., cpu_bound=True, ...)``."""
    if executor is not None:
        if options:
            raise TypeError("use @task or @task(**options), not task(function, **options)")
        return _build_task(executor)

    def decorator(function: TaskExecutor) -> Task:
        return _build_task(function, **options)

    return decorator


def tasks_in_module(module: object) -> list[Task]:
    """Every ``Task`` defined at the top level of an imported module."""
    return [value for value in vars(module).values() if isinstance(value, Task)]
