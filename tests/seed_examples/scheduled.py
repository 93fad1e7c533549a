"""tasks.txt, "Scheduled Tasks" (every): as written. task-queue-v1.txt's variant
(``context: TaskContext`` returning "OK") is ``scheduled_ok``, renamed to share the module;
task-queue.md's omits ``import asyncio``, added here."""

import asyncio
from datetime import timedelta
from fluid.scheduler import task, TaskRun, every


@task(schedule=every(timedelta(seconds=1)))
async def scheduled(ctx: TaskRun) -> None:
    await asyncio.sleep(0.1)


from fluid.scheduler import TaskContext


@task(schedule=every(timedelta(seconds=1)))
async def scheduled_ok(context: TaskContext) -> str:
    await asyncio.sleep(0.1)
    return "OK"
