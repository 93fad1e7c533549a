"""tasks.txt, "Scheduled Tasks" (crontab): as written."""

import asyncio
from fluid.scheduler import task, TaskRun, crontab


@task(schedule=crontab(hours='*/2'))
async def scheduled(ctx: TaskRun) -> None:
    await asyncio.sleep(0.1)
