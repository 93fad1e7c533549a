"""Lifecycle events: the seed's rules (the tag names the handler) and who hears what."""

from __future__ import annotations

import pytest

from fluid.scheduler import Event, Run, TaskManager, TaskManagerPlugin, TaskState
from fluid.scheduler.lifecycle import AsyncHandler


def run(state: TaskState, *tags: str) -> Run:
    return Run(id="run-1", task="bill", state=state, tags=frozenset(tags))


def recorder(seen: list[str], name: str) -> AsyncHandler:
    async def handler(item: Run) -> None:
        seen.append(f"{name}:{item.state}")

    return handler


async def test_every_handler_of_a_state_fires_whatever_its_tag() -> None:
    manager = TaskManager()
    seen: list[str] = []
    manager.register_async_handler("success", recorder(seen, "plain"))
    manager.register_async_handler("success.db", recorder(seen, "db"))
    manager.register_async_handler(Event(TaskState.success, "audit"), recorder(seen, "audit"))
    manager.register_async_handler("failure.db", recorder(seen, "db-failure"))
    # The run's own tags do not select handlers: the tag is the handler's name.
    await manager.emit(run(TaskState.success, "billing"))
    assert seen == ["plain:success", "db:success", "audit:success"]


async def test_a_tag_registered_again_replaces_only_its_own_handler() -> None:
    manager = TaskManager()
    seen: list[str] = []
    first, second = recorder(seen, "first"), recorder(seen, "second")
    manager.register_async_handler("success.db", first)
    manager.register_async_handler("success.other", recorder(seen, "other"))
    manager.register_async_handler("success.db", second)
    await manager.emit(run(TaskState.success))
    assert seen == ["second:success", "other:success"]
    assert manager.unregister_async_handler(Event(TaskState.success, "db")) is second
    assert manager.unregister_async_handler("success.db") is None


def test_events_parse_from_strings_and_objects() -> None:
    assert Event.from_string_or_event("rate_limited.db") == Event(TaskState.rate_limited, "db")
    assert Event.from_string_or_event("queued") == Event(TaskState.queued)
    assert str(Event(TaskState.success, "db")) == "success.db"
    assert Event("success", "x") == Event(TaskState.success, "x")  # type: ignore[arg-type]


@pytest.mark.parametrize("event", ["done", "", "success.", "Success", "done.db"])
def test_unknown_events_are_refused(event: str) -> None:
    with pytest.raises(ValueError, match=r"expected|a tag is expected"):
        TaskManager().register_async_handler(event, recorder([], "x"))


async def test_a_failing_handler_does_not_break_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = TaskManager()
    seen: list[str] = []

    async def broken(_: Run) -> None:
        raise RuntimeError("smtp down")

    manager.register_async_handler("failure.mail", broken)
    manager.register_async_handler("failure.audit", recorder(seen, "audit"))
    await manager.emit(run(TaskState.failure))
    assert seen == ["audit:failure"]
    assert "handler failure.mail failed" in caplog.text


def test_a_plugin_registers_itself_once() -> None:
    class Audit(TaskManagerPlugin):
        registered = 0

        def register(self, task_manager: TaskManager) -> None:
            self.registered += 1
            task_manager.register_async_handler("running.audit", recorder([], "audit"))

    manager, audit = TaskManager(), Audit()
    assert manager.with_plugin(audit).with_plugin(audit) is manager
    assert audit.registered == 1
    assert manager.unregister_async_handler("running.audit") is not None
