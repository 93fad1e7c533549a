"""`fluid tasks`: list the registered tasks (with their schedules), enable or disable one."""

from __future__ import annotations

import typer

from fluid.scheduler import Client, TaskInfo
from fluid.scheduler.errors import FluidError
from fluid.scheduler.status import ScheduleInfo

from .app import JsonOption, TaskNameArgument, call
from .render import console, print_tasks

tasks_app = typer.Typer(help="List, enable and disable tasks.", invoke_without_command=True)


@tasks_app.callback()
def tasks(typer_context: typer.Context, as_json: JsonOption = False) -> None:
    """List registered tasks (or enable/disable one)."""
    if typer_context.invoked_subcommand is not None:
        return
    infos, schedules = call(_tasks_and_schedules)
    print_tasks(infos, schedules, as_json)


async def _tasks_and_schedules(
    client: Client,
) -> tuple[list[TaskInfo], dict[str, ScheduleInfo]]:
    infos = await client.list_tasks()
    try:
        status = await client.list_schedules()
    except FluidError:
        # No scheduler at FLUID_SCHEDULER_ADDRESS (default: --address): its columns show "-".
        return infos, {}
    return infos, {schedule.task: schedule for schedule in status.schedules}


@tasks_app.command("enable")
def enable_task(name: TaskNameArgument) -> None:
    """Enable a task."""
    call(lambda client: client.set_task_enabled(name, True))
    console.print(f"task {name} enabled")


@tasks_app.command("disable")
def disable_task(name: TaskNameArgument) -> None:
    """Disable a task: its runs end aborted until it is enabled again."""
    call(lambda client: client.set_task_enabled(name, False))
    console.print(f"task {name} disabled")
