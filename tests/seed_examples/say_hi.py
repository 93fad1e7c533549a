"""task-queue.md and tasks.txt, "Tasks": as written."""

from fluid.scheduler import task, TaskRun


@task
async def say_hi(ctx: TaskRun) -> None:
    print("Hi!")
