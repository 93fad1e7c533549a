"""The warm fork server of the local backend: what its forks hold, and its death."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from fluid.scheduler.loader import load_tasks
from fluid.scheduler.models import TaskState
from fluid.scheduler.run import Run
from fluid.service.settings import ClientSettings
from fluid_cpu_runner.local import ForkLauncher, ForkServerError, LocalBackend

from conftest import TESTS
from run_processes import gone, ready_pids
from runner_output import OutputLines


@pytest_asyncio.fixture
async def launcher(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ForkLauncher]:
    # The fork server imports `cpu_tasks` by name, as the runner's processes do.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    )
    fork_launcher = ForkLauncher(["cpu_tasks"])
    await fork_launcher.start()
    try:
        yield fork_launcher
    finally:
        await fork_launcher.stop()


def _backend(launcher: ForkLauncher) -> LocalBackend:
    return LocalBackend(launcher, clients=ClientSettings(address="127.0.0.1:1"), kill_grace=0.5)


async def _run(backend: LocalBackend, task: str, run_id: str) -> Run:
    definition = load_tasks(["cpu_tasks"])[task]
    report = await backend.execute(definition, Run(id=run_id, task=task))
    return Run(id=run_id, task=task, state=report.state, result=report.result, error=report.error)


async def test_a_fork_holds_the_task_modules_not_the_runners_main_program(
    launcher: ForkLauncher,
) -> None:
    run = await _run(_backend(launcher), "whoami", "fork-1")
    assert run.state is TaskState.success, run.error
    # The runner here is pytest: a fork that re-ran the runner's main script would have it.
    assert run.result["runner_main_loaded"] is False
    assert run.result["pid"] != launcher.server_pid


async def test_a_dead_fork_server_is_replaced_by_the_next_run(launcher: ForkLauncher) -> None:
    first = launcher.server_pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    assert await gone(first)

    run = await _run(_backend(launcher), "whoami", "fork-2")

    assert run.state is TaskState.success, run.error
    assert launcher.server_pid not in (None, first)


async def test_a_run_whose_fork_server_dies_fails_and_its_group_is_killed(
    launcher: ForkLauncher, output: OutputLines
) -> None:
    running = asyncio.create_task(_run(_backend(launcher), "linger", "fork-3"))
    pid, grandchild = ready_pids(await output.wait_for("fork-3", "ready"))
    server = launcher.server_pid
    assert server is not None
    os.kill(server, signal.SIGKILL)

    with pytest.raises(ForkServerError, match="fork server ended"):
        await asyncio.wait_for(running, 20)

    assert await gone(pid, grandchild)
