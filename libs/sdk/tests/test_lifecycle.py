"""Lifecycle handlers: registration rules and which events a run fires."""

from __future__ import annotations

import pytest

from fluid.scheduler import Run, TaskManager, TaskManagerPlugin, TaskState
from fluid.scheduler.lifecycle import EventHandler


def run(state: TaskState, *tags: str) -> Run:
    return Run(id="run-1", task="bill", state=state, tags=frozenset(tags))


async def test_a_run_fires_its_state_and_each_state_dot_tag() -> None:
    manager = TaskManager()
    seen: list[str] = []

    def record(event: str) -> EventHandler:
        async def handler(_: Run) -> None:
            seen.append(event)

        return handler

    for event in ("success", "success.billing", "success.other", "failure"):
        manager.register_async_handler(event, record(event))
    await manager.emit(run(TaskState.success, "billing", "eu"))
    assert seen == ["success", "success.billing"]


def test_unregister_returns_the_handler() -> None:
    manager = TaskManager()

    async def handler(_: Run) -> None:
        return None

    manager.register_async_handler("aborted.billing", handler)
    assert manager.unregister_async_handler("aborted.billing") is handler
    assert manager.unregister_async_handler("aborted.billing") is None


@pytest.mark.parametrize("event", ["done", "", "success.", "Success"])
def test_unknown_events_are_refused(event: str) -> None:
    async def handler(_: Run) -> None:
        return None

    with pytest.raises(ValueError, match="expected a state"):
        TaskManager().register_async_handler(event, handler)


async def test_a_failing_handler_does_not_break_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = TaskManager()
    seen: list[str] = []

    async def broken(_: Run) -> None:
        raise RuntimeError("smtp down")

    async def fine(item: Run) -> None:
        seen.append(item.id)

    manager.register_async_handler("failure", broken)
    manager.register_async_handler("failure.billing", fine)
    await manager.emit(run(TaskState.failure, "billing"))
    assert seen == ["run-1"]
    assert "handler of failure failed" in caplog.text


def test_a_plugin_registers_itself() -> None:
    class Audit(TaskManagerPlugin):
        def register(self, manager: TaskManager) -> None:
            async def handler(_: Run) -> None:
                return None

            manager.register_async_handler("running", handler)

    manager = TaskManager()
    manager.register_plugin(Audit())
    assert manager.unregister_async_handler("running") is not None
