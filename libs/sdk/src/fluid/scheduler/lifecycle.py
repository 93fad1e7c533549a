"""Lifecycle handlers and plugins: react to runs' states without forking the worker.

Handlers are registered for an event named after a state (``"success"``) or a state and
a task tag (``"success.billing"``) and receive the run as it is at that moment. They run
in the worker process that executes the run, for the states it sees: ``running`` when an
attempt starts, and ``success``, ``failure`` or ``aborted`` when it ends (``failure``
fires for each failed attempt, retried or not). States only the dispatcher decides
(``rate_limited``, ``interrupted``) are not seen by a worker. A failing handler is logged
and never fails the run.
"""

from __future__ import annotations

import abc
import importlib
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable

from .models import TaskState
from .run import Run

logger = logging.getLogger("fluid.lifecycle")

EventHandler = Callable[[Run], Awaitable[None]]


class TaskManager:
    """The worker-side registry of lifecycle handlers, as plugins see it."""

    def __init__(self) -> None:
        self._handlers: dict[str, EventHandler] = {}

    @staticmethod
    def _check(event: str) -> None:
        state, _, tag = event.partition(".")
        if state not in TaskState.__members__ or (event.endswith(".") and not tag):
            raise ValueError(
                f"event {event!r}: expected a state ({', '.join(TaskState)}) "
                "optionally followed by .tag"
            )

    def register_async_handler(self, event: str, handler: EventHandler) -> None:
        """Call ``handler(run)`` on ``event``; a second handler for an event replaces it."""
        self._check(event)
        self._handlers[event] = handler

    def unregister_async_handler(self, event: str) -> EventHandler | None:
        """Stop handling ``event``; returns the handler that was registered, if any."""
        return self._handlers.pop(event, None)

    def register_plugin(self, plugin: TaskManagerPlugin) -> None:
        """Let ``plugin`` register its handlers here (``plugin.register(self)``)."""
        plugin.register(self)

    async def emit(self, run: Run) -> None:
        """Call the handlers of the run's state and of each of its tags."""
        for event in (str(run.state), *(f"{run.state}.{tag}" for tag in sorted(run.tags))):
            handler = self._handlers.get(event)
            if handler is None:
                continue
            try:
                await handler(run)
            except Exception:
                logger.exception("handler of %s failed for run %s", event, run.id)


class TaskManagerPlugin(abc.ABC):
    """A plugin: an instance at the top level of a task module registers itself."""

    @abc.abstractmethod
    def register(self, manager: TaskManager) -> None:
        """Register handlers (and anything else the plugin needs) with ``manager``."""


def manager_for_modules(module_names: Iterable[str]) -> TaskManager:
    """A manager with every plugin found at the top level of the (imported) modules."""
    manager = TaskManager()
    for name in sorted(set(module_names)):
        module = sys.modules.get(name) or importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, TaskManagerPlugin):
                manager.register_plugin(value)
    return manager
