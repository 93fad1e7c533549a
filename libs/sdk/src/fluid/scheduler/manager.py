"""The seed's ``TaskManager``, ``TaskConsumer`` and ``TaskScheduler``: doors into fluid.

A ``TaskManager`` is a client of a fluid system plus a registry of tasks, handlers,
plugins and ``deps``. With no address (``FLUID_ADDRESS`` unset, no ``address=``) it runs an
embedded system in this process on a loopback port, as ``fluid dev`` does (memory queue,
SQLite history under ``.fluid/``); with one it joins that system. A ``TaskConsumer`` also
executes its registered tasks (an io-worker and a cpu-runner in this process), and a
``TaskScheduler`` also fires their schedules. They are the same services ``fluid serve``
runs, not a second implementation: the classes only compose them.

Inside a service, the io-worker and the cpu-runner build a manager bound to the running
system (``TaskManager.bound``): it is ``ctx.task_manager`` for the runs they execute, and
the plugins at the top level of the task modules register on it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import inspect
import logging
import random
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import ModuleType, SimpleNamespace, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import InvalidArgumentError, NotFoundError
from .execution import execute_run, params_error
from .lifecycle import AsyncHandler, Event, EventDispatcher
from .models import TaskPriority, TaskState
from .run import Run, new_run_id, utcnow
from .secrets import revealed
from .task import Task, TaskRun, current_task_run

if TYPE_CHECKING:
    from fluid.service.host import Host

    from .client import Client

logger = logging.getLogger("fluid.task_manager")

# The services of the embedded system, and those a consumer and a scheduler add.
SYSTEM_SERVICES = ("history", "dispatcher")
CONSUMER_SERVICES = ("io-worker", "cpu-runner")
SCHEDULER_SERVICES = ("scheduler",)


class State(SimpleNamespace):
    """Attributes anyone may set: ``task_manager.state.task_db_plugin``, default ``deps``."""


class TaskManagerConfig(BaseSettings):
    """How a task manager reaches (or runs) its system, from keywords or ``FLUID_*``."""

    model_config = SettingsConfigDict(env_prefix="FLUID_", extra="ignore")

    # Empty: run the system embedded in this process.
    address: str = ""
    # Runs the embedded io-worker executes at once.
    max_concurrent_tasks: int = Field(default=10, gt=0)
    # How long shutdown() lets running runs finish before handing them back.
    stopping_grace_period: float = Field(default=10.0, ge=0)


class TaskManagerPlugin(abc.ABC):
    """A plugin: registers handlers (and anything else) on a task manager.

    An instance at the top level of a task module is registered on the manager of every
    service that loads the module, and on the manager of each cpu-bound run's process.
    """

    @abc.abstractmethod
    def register(self, task_manager: TaskManager) -> None:
        """Register the plugin with ``task_manager``."""

    def register_routes(self, app: Any, prefix: str = "/tasks", tags: Any = None) -> None:  # noqa: B027
        """Add HTTP routes to a FastAPI app (``task_manager_fastapi``); none by default."""

    async def startup(self, task_manager: TaskManager) -> None:  # noqa: B027
        """Called by ``task_manager.startup()``, before any run executes."""

    async def shutdown(self, task_manager: TaskManager) -> None:  # noqa: B027
        """Called by ``task_manager.shutdown()``, after the last run ended."""


DepsFactory = Callable[[], contextlib.AbstractAsyncContextManager[Any]]


class DepsProvider(TaskManagerPlugin):
    """Gives a task manager its ``deps`` from an async context manager factory.

    Services cannot take a ``deps`` keyword, so a task module says how to make them:
    ``deps = provide_deps(lifespan)`` at its top level, ``lifespan`` an async context
    manager factory yielding the object. Each process that runs the module's tasks (the
    io-worker, each cpu-bound run's own process) enters it at start-up and exits it at
    shutdown, so connections are opened and closed where they are used.
    """

    def __init__(self, factory: DepsFactory) -> None:
        self.factory = factory
        self._stacks: dict[int, contextlib.AsyncExitStack] = {}

    def register(self, task_manager: TaskManager) -> None:
        """Nothing to register: the deps are made at start-up."""
        return None

    async def startup(self, task_manager: TaskManager) -> None:
        """Enter the factory's context and make what it yields ``task_manager.deps``."""
        stack = contextlib.AsyncExitStack()
        task_manager.deps = await stack.enter_async_context(self.factory())
        self._stacks[id(task_manager)] = stack

    async def shutdown(self, task_manager: TaskManager) -> None:
        """Exit the context ``startup`` entered for ``task_manager``."""
        stack = self._stacks.pop(id(task_manager), None)
        if stack is not None:
            await stack.aclose()


def provide_deps(factory: DepsFactory) -> DepsProvider:
    """The plugin that sets ``task_manager.deps`` from ``factory`` (see ``DepsProvider``)."""
    return DepsProvider(factory)


class Broker:
    """The seed's ``task_manager.broker``: what the dispatcher's queue holds."""

    def __init__(self, manager: TaskManager) -> None:
        self._manager = manager

    async def queue_length(self) -> dict[str, int]:
        """Runs waiting per priority name."""
        status = await self._manager.client.queue_status()
        return {str(priority): status.depths.get(priority, 0) for priority in TaskPriority}


def plugins_in_module(module: ModuleType) -> list[TaskManagerPlugin]:
    """The plugin instances defined at the top level of ``module``."""
    return [value for value in vars(module).values() if isinstance(value, TaskManagerPlugin)]


class TaskManager:
    """A client of a fluid system with the seed's registry of tasks, handlers and plugins."""

    # Services this class adds to the system it runs or joins (none: only a client).
    worker_services: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, deps: Any = None, config: TaskManagerConfig | None = None, **kwargs: Any):
        self.deps: Any = deps if deps is not None else State()
        self.config = config or TaskManagerConfig(**kwargs)
        self.state = State()
        self.dispatcher = EventDispatcher()
        self.registry: dict[str, Task] = {}
        self.plugins: list[TaskManagerPlugin] = []
        self.broker = Broker(self)
        self._client: Client | None = None
        self._owns_client = False
        self._host: Host | None = None
        self._running: dict[str, str] = {}
        self._started = False
        # Bound to a system someone else runs: startup() starts only the plugins.
        self._bound = False
        # Contexts entered for the user (enter_async_context), closed at shutdown.
        self._stack = contextlib.AsyncExitStack()
        # Callbacks and queue calls running on the manager's loop, cancelled at shutdown.
        self._background: set[asyncio.Future[Any]] = set()
        self._callbacks: list[tuple[Callable[[], Any], float, float, float]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()

    @classmethod
    def bound(cls, client: Client | None, tasks: Mapping[str, Task]) -> TaskManager:
        """The manager of a service's runs, or of a cpu-bound run's process: ``client``
        reaches the running system (None: a ``Client()`` from the environment, made on first
        use), and the plugins of the tasks' modules are registered."""
        manager = cls()
        manager._bound = True
        manager._client = client
        for task in tasks.values():
            manager.register_task(task)
        for name in sorted({task.module for task in tasks.values()}):
            module = sys.modules.get(name)
            if module is not None:
                manager.register_from_module(module)
        return manager

    @classmethod
    def of_service(
        cls, given: object | None, client: Client | None, tasks: Mapping[str, Task]
    ) -> TaskManager:
        """A worker service's manager: ``given``, the TaskConsumer running the service in
        its process (``ServiceContext.task_manager``), else one ``bound`` to the system."""
        if isinstance(given, TaskManager):
            return given
        return cls.bound(client, tasks)

    # -- registry -----------------------------------------------------------------
    def register_task(self, task: Task) -> None:
        """Register ``task``: a consumer executes only registered tasks."""
        other = self.registry.get(task.name)
        if other is not None and other is not task:
            raise ValueError(
                f"two tasks are named {task.name!r}: in {other.module} and {task.module}"
            )
        self.registry[task.name] = task

    def register_from_module(self, module: ModuleType) -> None:
        """Register every task at the top level of ``module`` whose name has no leading
        ``_``, and the module's plugins, as a service loading the module does."""
        self.register_from_dict(vars(module))
        for plugin in plugins_in_module(module):
            self.with_plugin(plugin)

    def register_from_dict(self, data: Mapping[str, Any]) -> None:
        """Register every ``Task`` value of ``data`` whose key has no leading ``_``."""
        for name, value in data.items():
            if not name.startswith("_") and isinstance(value, Task):
                self.register_task(value)

    def task_from_registry(self, task: str | Task) -> Task:
        """The registered task ``task`` names (``NotFoundError`` when there is none)."""
        name = task if isinstance(task, str) else task.name
        found = self.registry.get(name)
        if found is None:
            raise NotFoundError(f"task {name} is not registered with this task manager")
        return found

    # -- handlers and plugins -----------------------------------------------------
    def register_async_handler(self, event: Event | str, handler: AsyncHandler) -> None:
        """Call ``handler(run)`` when a run reaches the event's state (its tag names it)."""
        self.dispatcher.register_handler(event, handler)

    def unregister_async_handler(self, event: Event | str) -> AsyncHandler | None:
        """Stop the handler of ``event``; returns it (None if there was none)."""
        return self.dispatcher.unregister_handler(event)

    def with_plugin(self, plugin: TaskManagerPlugin) -> Self:
        """Register ``plugin`` (``plugin.register(self)``); returns this manager."""
        if plugin not in self.plugins:
            plugin.register(self)
            self.plugins.append(plugin)
        return self

    async def emit(self, run: Run) -> None:
        """Call the handlers of the run's state; count the runs executing here."""
        if run.state is TaskState.running:
            self._running[run.id] = run.task
        elif run.state.is_done:
            self._running.pop(run.id, None)
        await self.dispatcher.dispatch(run)

    # -- the system ---------------------------------------------------------------
    @property
    def client(self) -> Client:
        """The client of the system (after ``startup()``)."""
        if self._client is None and self._bound:
            from .client import Client

            self._client = Client()
            self._owns_client = True
        if self._client is None:
            raise RuntimeError("the task manager is not started: call startup() or use async with")
        return self._client

    async def startup(self) -> None:
        """Start (or join) the system and the plugins; a second call does nothing."""
        if self._started:
            return
        self._started = True
        self._stop.clear()
        self._loop = asyncio.get_running_loop()
        try:
            # Plugins first: the deps they make must exist before a worker leases a run.
            for plugin in self.plugins:
                await plugin.startup(self)
            if not self._bound:
                await self._start_system()
        except BaseException:
            await self.shutdown()
            raise
        for callback in self._callbacks:
            self._keep(asyncio.ensure_future(_call_later(*callback)))

    async def _start_system(self) -> None:
        from fluid.service.host import Host
        from fluid.service.settings import ClientSettings, ServerSettings

        from .client import Client

        services = [*self.worker_services] if self.registry else []
        if not self.config.address:
            services = [*SYSTEM_SERVICES, *services]
        clients = ClientSettings(address=self.config.address) if self.config.address else None
        if services:
            self._host = Host(
                services,
                settings=ServerSettings(
                    port=0, shutdown_grace_seconds=self.config.stopping_grace_period
                ),
                task_modules=sorted({task.module for task in self.registry.values()}),
                clients=clients,
                task_manager=self,
            )
            await self._host.start()
        address = self.config.address or (self._host.address if self._host else "")
        self._client = Client(address or None)
        self._owns_client = True
        logger.info(
            "%s %s %s",
            type(self).__name__,
            "joined" if self.config.address else "runs an embedded system on",
            address,
        )

    async def shutdown(self) -> None:
        """Stop the plugins, then what ``startup()`` started."""
        if not self._started:
            return
        self._started = False
        self._stop.set()
        for pending in list(self._background):
            pending.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        # The system drains its runs first: they may still use the deps plugins made.
        if self._host is not None:
            host, self._host = self._host, None
            await host.stop()
        for plugin in reversed(self.plugins):
            try:
                await plugin.shutdown(self)
            except Exception:
                logger.exception("plugin %r did not shut down cleanly", plugin)
        await self._stack.aclose()
        self._stack = contextlib.AsyncExitStack()
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            self._owns_client = False
            await client.close()

    async def __aenter__(self) -> Self:
        await self.startup()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    # -- the seed's worker surface ----------------------------------------------------
    async def run(self) -> None:
        """Start, serve until ``gracefully_stop()`` (or cancellation), then shut down."""
        await self.startup()
        try:
            await self._stop.wait()
        finally:
            await self.shutdown()

    def gracefully_stop(self) -> None:
        """Make ``run()`` shut down."""
        self._stop.set()

    def is_running(self) -> bool:
        """Whether the manager is started and not stopping."""
        return self._started and not self._stop.is_set()

    def is_stopping(self) -> bool:
        """Whether ``gracefully_stop()`` was called on a started manager."""
        return self._started and self._stop.is_set()

    async def enter_async_context(self, cm: contextlib.AbstractAsyncContextManager[Any]) -> Any:
        """Enter ``cm`` now and exit it at shutdown, after the system stopped."""
        return await self._stack.enter_async_context(cm)

    def register_callback(
        self,
        callback: Callable[[], Any],
        seconds: float,
        jitter: float = 0.0,
        periodic: bool | float = False,
    ) -> None:
        """Call ``callback`` (a function or a coroutine function) ``seconds`` after
        start-up (plus up to ``jitter``), again every ``periodic`` seconds when set
        (``True``: every ``seconds``); a failure is logged. Cancelled at shutdown."""
        every = seconds if periodic is True else float(periodic or 0.0)
        entry = (callback, seconds, jitter, every)
        if self._started:
            self._keep(asyncio.ensure_future(_call_later(*entry)))
        else:
            self._callbacks.append(entry)

    def sync_queue(self, task: str | Task) -> None:
        """Queue a run from code that cannot await, in any thread: queued on the
        manager's loop; a failure is logged."""
        self._from_any_thread(task, None)

    def sync_priority_queue(self, task: str | Task) -> None:
        """``sync_queue`` at high priority."""
        self._from_any_thread(task, TaskPriority.high)

    def _from_any_thread(self, task: str | Task, priority: TaskPriority | None) -> None:
        if self._loop is None or not self._started:
            raise RuntimeError("the task manager is not started: call startup() or use async with")
        self._loop.call_soon_threadsafe(lambda: self._keep(self.queue(task, priority)))

    def _keep(self, pending: asyncio.Future[Any]) -> None:
        """Track work started for the user: logged when it fails, cancelled at shutdown."""
        self._background.add(pending)
        pending.add_done_callback(_logged_failure)
        pending.add_done_callback(self._background.discard)

    # -- runs -----------------------------------------------------------------------
    def create_task_run(
        self,
        task: str | Task,
        run_id: str = "",
        priority: TaskPriority | None = None,
        **params: Any,
    ) -> TaskRun[Any, Any]:
        """A run of a registered task in state ``init``, its params validated."""
        found = self.task_from_registry(task)
        values = revealed(params)
        try:
            model = found.validate_params(values)
        except ValidationError as exc:
            raise InvalidArgumentError(params_error(exc).message) from None
        run = Run(
            id=run_id or new_run_id(),
            task=found.name,
            priority=priority or found.priority,
            params=values,
            tags=found.tags,
        )
        return TaskRun(run=run, task=found, params=model, task_manager=self)

    def queue(
        self, task: str | Task, priority: TaskPriority | None = None, **params: Any
    ) -> asyncio.Task[Run]:
        """Queue a run now, awaited or not; awaiting the answer gives the queued run.

        Inside a run, the new run is its child (``from_run_id``) and the parent's report
        waits until this queue call finished."""
        parent = current_task_run.get()
        queued = asyncio.ensure_future(
            self._queue(task, params, priority, parent.id if parent is not None else "")
        )
        if parent is not None:
            parent.adopt(queued)
        return queued

    async def _queue(
        self,
        task: str | Task,
        params: Mapping[str, Any],
        priority: TaskPriority | None,
        parent: str,
    ) -> Run:
        run = await self.queue_run(task, params, priority=priority, from_run_id=parent)
        await self.emit(run)
        return run

    async def queue_run(
        self,
        task: str | Task,
        params: Mapping[str, Any],
        *,
        priority: TaskPriority | None = None,
        from_run_id: str = "",
    ) -> Run:
        """Queue one run through the client (what ``ctx.queue`` calls)."""
        return await self.client.queue_run(task, params, priority=priority, from_run_id=from_run_id)

    async def queue_and_wait(self, task: str | Task, *, timeout: float = 2, **params: Any) -> Run:
        """Queue a run and wait until it is done (``RunTimeoutError`` after ``timeout`` s)."""
        run = await self.queue(task, **params)
        return await self.client.wait(run.id, timeout=timeout)

    async def execute(self, task: str | Task, **params: Any) -> Run:
        """Run a registered task here and now, through the states and handlers of a queued
        run (``queued``, ``running``, then how it ended); returns the finished run."""
        context = self.create_task_run(task, **params)
        now = utcnow()
        queued = replace(context.run, state=TaskState.queued, queued=now)
        await self.emit(queued)
        running = replace(queued, state=TaskState.running, start=utcnow())
        await self.emit(running)
        report = await execute_run(context.task, running, self)
        ended = replace(
            running,
            state=report.state,
            result=report.result,
            error=report.error,
            reason=report.reason,
            end=utcnow(),
        )
        await self.emit(ended)
        return ended

    def execute_sync(self, task: str | Task, **params: Any) -> Run:
        """``execute`` from code with no event loop: starts the system, runs, stops."""

        async def started_and_executed() -> Run:
            async with self:
                return await self.execute(task, **params)

        return asyncio.run(started_and_executed())

    # -- status -----------------------------------------------------------------------
    @property
    def num_concurrent_tasks(self) -> int:
        """Runs executing in this process now."""
        return len(self._running)

    def num_concurrent_tasks_for(self, task_name: str) -> int:
        """Runs of ``task_name`` executing in this process now."""
        return Counter(self._running.values())[task_name]

    async def status(self) -> dict[str, Any]:
        """The queue per priority, the live workers and what executes here."""
        status = await self.client.queue_status()
        return {
            "queue": {str(priority): status.depths.get(priority, 0) for priority in TaskPriority},
            "workers": [
                {"id": worker.worker_id, "kind": str(worker.kind), "running": worker.running}
                for worker in status.workers
            ],
            "running": dict(Counter(self._running.values())),
            "dead_letters": status.dead_letters,
        }


async def _call_later(
    callback: Callable[[], Any], seconds: float, jitter: float, every: float
) -> None:
    await asyncio.sleep(seconds + random.uniform(0, jitter))
    while True:
        try:
            outcome = callback()
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            logger.exception("callback %r failed", callback)
        if not every:
            return
        await asyncio.sleep(every + random.uniform(0, jitter))


def _logged_failure(pending: asyncio.Future[Any]) -> None:
    if not pending.cancelled() and pending.exception() is not None:
        logger.error("background work of the task manager failed: %r", pending.exception())


class TaskConsumer(TaskManager):
    """A task manager that also executes its registered tasks (io and cpu-bound)."""

    worker_services: ClassVar[tuple[str, ...]] = CONSUMER_SERVICES


class TaskScheduler(TaskConsumer):
    """A consumer that also fires the schedules of its tasks."""

    worker_services = (*CONSUMER_SERVICES, *SCHEDULER_SERVICES)
