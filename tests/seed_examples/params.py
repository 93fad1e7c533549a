"""task-queue.md and tasks.txt, "Task Parameters": as written (both snippets in one
module, the model first)."""

from pydantic import BaseModel


class TaskParams(BaseModel):
    name: str


from fluid.scheduler import task, TaskRun


@task
async def say_hi(ctx: TaskRun[TaskParams]) -> None:
    print(f"Hi {ctx.params.name}!")
