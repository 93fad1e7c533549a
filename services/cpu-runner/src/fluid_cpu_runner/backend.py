"""Where a cpu-bound run executes: the interface the runner's backends implement."""

from __future__ import annotations

from typing import Protocol

from fluid.scheduler.models import RunReport
from fluid.scheduler.run import Run
from fluid.scheduler.task import Task


class Backend(Protocol):
    """Executes one attempt of a run outside the runner's process.

    ``execute`` returns how the attempt ended; when cancelled (external abort, lost
    lease, shutdown) it stops the attempt's process or Job before re-raising.
    """

    name: str

    async def start(self) -> None: ...

    async def execute(self, task: Task, run: Run) -> RunReport: ...

    async def stop(self) -> None: ...
