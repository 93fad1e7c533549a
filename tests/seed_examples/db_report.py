"""plugins-db.txt, "Accessing the plugin from a task": as written; it reads the history
of ``my-task``, defined here so there is some."""

from fluid.scheduler import TaskRun, task
from fluid.scheduler.db import get_db_plugin, TaskHistoryQuery


@task()
async def report(context: TaskRun) -> None:
    db_plugin = get_db_plugin(context.task_manager)
    page = await db_plugin.get_history(TaskHistoryQuery(task="my-task", limit=10))
    for run in page.data:
        print(run.id, run.state)


@task(name="my-task")
async def my_task(context: TaskRun) -> str:
    return "done"
