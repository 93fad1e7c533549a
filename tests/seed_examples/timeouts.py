"""tasks.txt, "Timeout": as written (the bodies are the docs' ``...``)."""

from fluid.scheduler import task, TaskRun


@task(timeout_seconds=300)
async def slow_io_task(ctx: TaskRun) -> None: ...


@task(cpu_bound=True, timeout_seconds=300)
async def slow_cpu_task(ctx: TaskRun) -> None: ...
