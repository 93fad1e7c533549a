"""Where a cpu-bound run executes: the interface the runner's backends implement."""

from __future__ import annotations

from typing import Protocol

from fluid.scheduler.models import RunError, RunReport
from fluid.scheduler.run import Run
from fluid.scheduler.task import Task


class Backend(Protocol):
    """Executes one attempt of a run outside the runner's process.

    ``execute`` returns how the attempt ended; when cancelled (external abort, lost
    lease, shutdown) it stops the attempt's process or Job before re-raising. The task's
    ``timeout_seconds`` count from the moment the attempt's process says the task function
    starts; until then a start-up allowance of the backend's own bounds it.
    """

    name: str
    # Runs executed at once when FLUID_CPU_CONCURRENCY does not say.
    default_concurrency: int

    async def start(self) -> None: ...

    async def execute(self, task: Task, run: Run) -> RunReport: ...

    async def stop(self) -> None: ...


def startup_timed_out(task: str, seconds: float, setting: str, how: str) -> RunError:
    """The error of an attempt whose process did not start the task function within the
    start-up allowance (``seconds``, from the variable ``setting``); ``how`` says what
    stopped it."""
    return RunError(
        "StartupTimeoutError",
        f"task {task} did not start within the start-up allowance of {seconds:g}s "
        f"({setting}): {how}",
    )
