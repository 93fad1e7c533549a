"""tasks.txt, "How it works": the ``is_in_cpu_process`` check as written, inside a
cpu-bound task (the docs show the check alone) that says where it ran."""

from fluid.scheduler import task, TaskRun


@task(cpu_bound=True)
async def where(ctx: TaskRun) -> str:
    from fluid.scheduler.common import is_in_cpu_process

    if is_in_cpu_process():
        # running inside the spawned subprocess
        return "subprocess"
    return "consumer"
