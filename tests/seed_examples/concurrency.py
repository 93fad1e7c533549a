"""tasks.txt, "Concurrency control": as written (the bodies are the docs' ``...``)."""

from fluid.scheduler import task, TaskRun


@task(max_concurrency=5)
async def fetch_data(ctx: TaskRun) -> None: ...


@task(cpu_bound=True, max_concurrency=2)
async def heavy_calculation(ctx: TaskRun) -> None: ...
