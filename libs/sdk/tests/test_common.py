"""Detecting the subprocess that executes a cpu_bound run."""

import pytest

from fluid.scheduler import TaskRun, task
from fluid.scheduler.common import CPU_PROCESS_ENV, is_in_cpu_process


@task(cpu_bound=True)
async def crunch(ctx: TaskRun) -> None:
    return None


def test_the_seed_variable_name() -> None:
    assert CPU_PROCESS_ENV == "TASK_MANAGER_SPAWN"


def test_not_in_a_cpu_process_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CPU_PROCESS_ENV, raising=False)
    assert not is_in_cpu_process()
    assert crunch.runs_in_subprocess


@pytest.mark.parametrize("value", ["true", "True", "TRUE", "1", "yes"])
def test_in_a_cpu_process_when_spawned(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(CPU_PROCESS_ENV, value)
    assert is_in_cpu_process()
    # Inside its own subprocess the decorator is transparent: the run executes in place.
    assert not crunch.runs_in_subprocess


@pytest.mark.parametrize("value", ["", "false", "0", "no", "spawn"])
def test_other_values_are_not_a_cpu_process(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(CPU_PROCESS_ENV, value)
    assert not is_in_cpu_process()


def test_an_io_task_never_runs_in_a_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    @task(name="io")
    async def io(ctx: TaskRun) -> None:
        return None

    monkeypatch.delenv(CPU_PROCESS_ENV, raising=False)
    assert not io.runs_in_subprocess
