"""The task `make bench-cpu` runs: as little work as possible, so the figures are overhead."""

from __future__ import annotations

from fluid.scheduler import TaskRun, task


@task(cpu_bound=True)
async def cpu_noop(ctx: TaskRun) -> int:
    return sum(range(100))
