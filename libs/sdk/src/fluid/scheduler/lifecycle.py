"""Lifecycle events: handlers called with a run when it reaches a state.

An event is a state and a tag: ``Event(TaskState.success, "db")``, written ``"success.db"``
(or ``"success"``, the empty tag). The tag names the *handler*, as in the seed: a state has
any number of handlers, one per tag, and registering a tag again replaces that handler
only. So two plugins each listening to ``success`` under their own tag both hear it.

Which process calls a state's handlers (each once per run and state):

- ``queued``: the task manager that queued the run (``TaskManager.queue``);
- ``running``, ``success``, ``failure``, ``aborted``: the worker that executes the attempt
  (``failure`` fires for each failed attempt, retried or not; a cpu-bound run's handlers
  run in the cpu-runner, not in the run's own process).

- ``rate_limited``, ``interrupted`` (its lease ran out) and ``aborted`` of a run no worker
  held: the dispatcher decides them alone, and announces each once to one worker of the
  task with that worker's next lease answer (``LeaseRunsResponse.settled``); its handlers
  fire there. An announcement is lost if that answer is (at most once, unlike the run).

A failing handler is logged and never fails the run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .models import TaskState
from .run import Run

logger = logging.getLogger("fluid.lifecycle")

AsyncHandler = Callable[[Run], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Event:
    """A state and the tag naming one handler of it (``""``: the untagged handler)."""

    state: TaskState
    tag: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.state, TaskState):
            object.__setattr__(self, "state", _state(str(self.state), str(self.state)))
        if "." in self.tag:
            raise ValueError(f"event tag {self.tag!r}: a tag holds no '.'")

    @classmethod
    def from_string_or_event(cls, event: Event | str) -> Event:
        """``event`` itself, or the event ``"state"`` / ``"state.tag"`` names."""
        if isinstance(event, Event):
            return event
        state, dot, tag = event.partition(".")
        if dot and not tag:
            raise ValueError(f"event {event!r}: a tag is expected after the '.'")
        return cls(_state(state, event), tag)

    def __str__(self) -> str:
        return f"{self.state}.{self.tag}" if self.tag else str(self.state)


def _state(name: str, event: str) -> TaskState:
    try:
        return TaskState(name)
    except ValueError:
        raise ValueError(
            f"event {event!r}: expected a state ({', '.join(TaskState)}) optionally followed by "
            ".tag"
        ) from None


class EventDispatcher:
    """The handlers of a task manager, by state and tag."""

    def __init__(self) -> None:
        self._handlers: dict[TaskState, dict[str, AsyncHandler]] = {}

    def register_handler(self, event: Event | str, handler: AsyncHandler) -> AsyncHandler | None:
        """Call ``handler(run)`` on ``event``; returns the handler its tag had before."""
        parsed = Event.from_string_or_event(event)
        handlers = self._handlers.setdefault(parsed.state, {})
        previous = handlers.get(parsed.tag)
        handlers[parsed.tag] = handler
        return previous

    def unregister_handler(self, event: Event | str) -> AsyncHandler | None:
        """Stop calling the handler of ``event``; returns it (None if there was none)."""
        parsed = Event.from_string_or_event(event)
        return self._handlers.get(parsed.state, {}).pop(parsed.tag, None)

    def handlers(self, state: TaskState) -> list[tuple[str, AsyncHandler]]:
        """The handlers of ``state`` with their tags, in registration order."""
        return list(self._handlers.get(state, {}).items())

    async def dispatch(self, run: Run) -> None:
        """Call every handler of the run's state, one after the other."""
        for tag, handler in self.handlers(run.state):
            try:
                await handler(run)
            except Exception:
                logger.exception("handler %s failed for run %s", Event(run.state, tag), run.id)
