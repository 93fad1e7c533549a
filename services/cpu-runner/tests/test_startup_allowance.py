"""A local run's process that never starts its task function: the start-up allowance."""

from __future__ import annotations

import os

import pytest

from fluid.scheduler.loader import load_tasks
from fluid.scheduler.models import TaskState
from fluid.scheduler.run import Run
from fluid.service.settings import ClientSettings
from fluid_cpu_runner.local import FreshLauncher, LocalBackend

from conftest import TESTS


async def test_a_process_that_never_starts_its_task_fails_past_the_allowance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The run's process imports slow_start_tasks by name, and waits in that import.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    )
    task = load_tasks(["slow_start_tasks"])["never_starts"]
    backend = LocalBackend(
        FreshLauncher(),
        clients=ClientSettings(address="127.0.0.1:1"),
        kill_grace=0.5,
        startup_seconds=1,
    )
    report = await backend.execute(task, Run(id="slow-start", task=task.name))
    assert report.state is TaskState.failure
    assert report.error is not None
    assert report.error.type == "StartupTimeoutError"
    assert report.error.message == (
        "task never_starts did not start within the start-up allowance of 1s "
        "(FLUID_CPU_STARTUP_SECONDS): its process was killed"
    )
