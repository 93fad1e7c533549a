"""tasks.txt, "Aborting a task": as written, with a stand-in ``should_proceed`` (the
docs leave it undefined): it proceeds when the params say ``proceed``."""

from typing import Any


def should_proceed(params: Any) -> bool:
    return bool(params.get("proceed"))


from fluid.scheduler import task, TaskRun


@task
async def conditional_work(ctx: TaskRun) -> None:
    if not should_proceed(ctx.params):
        ctx.abort("precondition not met")
    ...
