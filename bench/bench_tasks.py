"""Tasks the benchmarks run."""

from __future__ import annotations

from fluid.scheduler import TaskRun, task


@task
async def noop(ctx: TaskRun) -> None:
    """Does nothing: measures the queue, not the task."""
