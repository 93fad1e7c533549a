"""The `fluid` command: run the system (dev, serve) and operate it (queue, runs, tasks)."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from importlib.metadata import entry_points
from typing import Annotated, Any, TypeVar

import grpc
import typer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fluid.scheduler import Client, Run, TaskInfo, TaskPriority, TaskState
from fluid.scheduler.errors import FluidError, NotFoundError, UnavailableError
from fluid.scheduler.models import QueueStatus, ScheduleInfo
from fluid.service.channel import open_channel
from fluid.service.host import Host, available_services
from fluid.service.logs import LogFormat, configure_logging
from fluid.service.settings import DEFAULT_ADDRESS, ClientSettings, ServerSettings

EXAMPLE_TASKS = "fluid_cli.examples"
COMMANDS_ENTRY_POINT_GROUP = "fluid.commands"
T = TypeVar("T")

app = typer.Typer(
    help="fluid: a distributed task queue for Python async code.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
tasks_app = typer.Typer(help="List, enable and disable tasks.", invoke_without_command=True)
app.add_typer(tasks_app, name="tasks")
dead_letters_app = typer.Typer(
    help="Run snapshots history refused: list them (default), send them again or drop them.",
    invoke_without_command=True,
)
app.add_typer(dead_letters_app, name="dead-letters")
# Installed services add their own sub-commands (e.g. `fluid history migrate`) without
# this package importing them.
for _commands in entry_points(group=COMMANDS_ENTRY_POINT_GROUP):
    app.add_typer(_commands.load(), name=_commands.name)
console = Console()
errors = Console(stderr=True)

AddressOption = Annotated[
    str,
    typer.Option(
        "--address", envvar="FLUID_ADDRESS", help="host:port of the fluid system (dispatcher)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
TasksOption = Annotated[
    list[str] | None,
    typer.Option(
        "--tasks",
        help="Module defining tasks (repeatable; env FLUID_TASK_MODULES, comma-separated).",
    ),
]


class _State:
    address: str = DEFAULT_ADDRESS


state = _State()


@app.callback()
def main_options(address: AddressOption = DEFAULT_ADDRESS) -> None:
    state.address = address


def _client() -> Client:
    # FLUID_DISPATCHER_ADDRESS / FLUID_HISTORY_ADDRESS still win when set.
    return Client(settings=ClientSettings(address=state.address))


def _call(operation: Callable[[Client], Awaitable[T]]) -> T:
    """Run one client operation; fluid's errors become one red line and exit code 1."""

    async def run() -> T:
        async with _client() as client:
            return await operation(client)

    try:
        return asyncio.run(run())
    except UnavailableError as error:
        errors.print(f"[red]error:[/] cannot reach fluid at {state.address} ({error})")
    except FluidError as error:
        errors.print(f"[red]error:[/] {error}")
    raise typer.Exit(1)


# -- running the system ------------------------------------------------------------------
def _modules(tasks: list[str] | None, default: list[str]) -> list[str]:
    if tasks:
        return tasks
    configured = os.environ.get("FLUID_TASK_MODULES", "")
    return [m.strip() for m in configured.split(",") if m.strip()] or default


def _serve(
    names: list[str],
    port: int | None,
    host: str | None,
    modules: list[str],
    log_format: LogFormat | None = None,
) -> None:
    settings = ServerSettings()
    overrides: dict[str, Any] = {}
    if port is not None:
        overrides["port"] = port
    if host is not None:
        overrides["host"] = host
    if log_format is not None and "FLUID_LOG_FORMAT" not in os.environ:
        overrides["log_format"] = log_format
    settings = settings.model_copy(update=overrides)
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(Host(names, settings=settings, task_modules=modules).run_until_signal())
    except (ValueError, OSError) as error:
        errors.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None


@app.command()
def dev(
    port: Annotated[int | None, typer.Option(help="Port to serve every service on.")] = None,
    tasks: TasksOption = None,
) -> None:
    """Run every installed service in one process on one port, with example tasks."""
    names = list(available_services())
    port = port if port is not None else ServerSettings().port
    modules = _modules(tasks, [EXAMPLE_TASKS])
    console.print(
        f"[bold]fluid dev[/]: {', '.join(names)} on 127.0.0.1:{port}, tasks from "
        f"{', '.join(modules)}\n  try: [cyan]uv run fluid queue say_hi name=Ada --wait[/]"
        "  then [cyan]uv run fluid runs[/]"
    )
    _serve(names, port, None, modules, log_format="pretty")


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="Service to run, e.g. dispatcher, io-worker.")],
    port: Annotated[int | None, typer.Option(help="Port to listen on (FLUID_PORT).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind (FLUID_HOST).")] = None,
    tasks: TasksOption = None,
) -> None:
    """Run one service (its settings come from FLUID_* environment variables)."""
    _serve([service], port, host, _modules(tasks, []))


# -- operating it --------------------------------------------------------------------------
def _parse_param(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        errors.print(f"[red]error:[/] params are key=value, got {item!r}")
        raise typer.Exit(2)
    try:
        # Numbers, booleans, lists and objects as JSON; anything else is a string.
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


_STATE_STYLE = {
    TaskState.success: "green",
    TaskState.failure: "red",
    TaskState.aborted: "yellow",
    TaskState.rate_limited: "magenta",
    TaskState.interrupted: "red",
    TaskState.running: "cyan",
    TaskState.queued: "blue",
}


def _state(run: Run) -> str:
    style = _STATE_STYLE.get(run.state, "white")
    return f"[{style}]{run.state}[/]"


def _run_json(run: Run) -> dict[str, Any]:
    data = asdict(run)
    data["tags"] = sorted(run.tags)
    encoded: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return encoded


def _print_run(run: Run, as_json: bool) -> None:
    if as_json:
        console.print_json(data=_run_json(run))
        return
    table = Table(show_header=False, box=None)
    rows: list[tuple[str, str]] = [
        ("id", run.id),
        ("task", run.task),
        ("state", _state(run)),
        ("priority", str(run.priority)),
        ("params", json.dumps(run.params)),
        ("queued", _when(run.queued)),
        ("start", _when(run.start)),
        ("end", _when(run.end)),
        ("attempt", str(run.attempt)),
    ]
    if run.duration is not None:
        rows.append(("duration", f"{run.duration * 1000:.1f} ms"))
    if run.result is not None:
        rows.append(("result", json.dumps(run.result)))
    if run.error is not None:
        rows.append(("error", f"{run.error.type}: {run.error.message}"))
    if run.reason:
        rows.append(("reason", run.reason))
    if run.from_run_id:
        rows.append(("parent", run.from_run_id))
    if run.root_run_id and run.root_run_id != run.id:
        rows.append(("root", run.root_run_id))
    for key, value in rows:
        table.add_row(f"[bold]{key}[/]", value)
    console.print(table)


@app.command()
def queue(
    task: Annotated[str, typer.Argument(help="Task name.")],
    params: Annotated[list[str] | None, typer.Argument(help="Params as key=value.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the run is done.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 60.0,
    priority: Annotated[TaskPriority | None, typer.Option(help="Override the priority.")] = None,
    count: Annotated[int, typer.Option(min=1, help="Queue this many runs (in bulk).")] = 1,
    as_json: JsonOption = False,
) -> None:
    """Queue a run of TASK with key=value params (values parsed as JSON when they can be)."""
    values = dict(_parse_param(item) for item in params or [])
    if count > 1:
        _queue_many(task, values, count, wait, timeout, priority, as_json)
        return

    async def operation(client: Client) -> Run:
        run = await client.queue_run(task, values, priority=priority)
        return await client.wait(run.id, timeout=timeout) if wait else run

    run = _call(operation)
    _print_run(run, as_json)
    if wait and run.is_failure:
        raise typer.Exit(1)


def _queue_many(
    task: str,
    values: dict[str, Any],
    count: int,
    wait: bool,
    timeout: float,
    priority: TaskPriority | None,
    as_json: bool,
) -> None:
    async def operation(client: Client) -> list[Run]:
        runs = await client.queue_many(task, [values] * count, priority=priority)
        if not wait:
            return runs
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=errors,
            disable=as_json,
        ) as progress:
            bar = progress.add_task(f"{task} runs", total=len(runs))

            async def finished(run: Run) -> Run:
                done = await client.wait(run.id, timeout=timeout)
                progress.advance(bar)
                return done

            return list(await asyncio.gather(*(finished(run) for run in runs)))

    runs = _call(operation)
    states = Counter(str(run.state) for run in runs)
    if as_json:
        console.print_json(data={"runs": [run.id for run in runs], "states": states})
    else:
        console.print(
            f"{len(runs)} runs of {task}: " + ", ".join(f"{n} {s}" for s, n in states.items())
        )
    if wait and any(run.is_failure for run in runs):
        raise typer.Exit(1)


@app.command()
def run(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    as_json: JsonOption = False,
) -> None:
    """Show one run: live from the dispatcher, else from history."""

    async def operation(client: Client) -> Run:
        try:
            return await client.get_run(run_id)
        except NotFoundError:
            return await client.get_stored_run(run_id)

    _print_run(_call(operation), as_json)


@app.command()
def logs(run_id: Annotated[str, typer.Argument(help="Run id.")]) -> None:
    """Print the captured output of a run (the last lines of its process; cpu-bound runs)."""

    async def operation(client: Client) -> Run:
        try:
            return await client.get_run(run_id)
        except NotFoundError:
            return await client.get_stored_run(run_id)

    found = _call(operation)
    if not found.output_tail:
        errors.print(f"run {found.id} ({found.task}, {found.state}) captured no output")
    for line in found.output_tail:
        console.out(line, highlight=False)
    if found.error is not None and found.error.traceback:
        errors.print(f"[red]{found.error.type}: {found.error.message}[/]")
        errors.out(found.error.traceback, highlight=False)


@app.command()
def status(as_json: JsonOption = False) -> None:
    """The system at a glance: services, queue depth per priority, workers and their load."""

    async def operation(client: Client) -> tuple[dict[str, str], QueueStatus]:
        services = {
            "dispatcher": client.dispatcher_address,
            "history": client.history_address,
            "scheduler": client.scheduler_address,
        }
        health = {name: await _health(address) for name, address in services.items()}
        return health, await client.queue_status()

    health, queue_status = _call(operation)
    if as_json:
        console.print_json(
            data={
                "services": health,
                "queue": {str(p): n for p, n in queue_status.depths.items()},
                "workers": [asdict(worker) for worker in queue_status.workers],
                "dead_letters": {
                    "count": queue_status.dead_letters,
                    "oldest": queue_status.oldest_dead_letter,
                },
                "history_outbox_pending": queue_status.outbox_pending,
                "degraded_loops": [asdict(loop) for loop in queue_status.degraded_loops],
            },
            default=str,
        )
        return
    services = Table("service", "status")
    for name, state in health.items():
        services.add_row(name, f"[green]{state}[/]" if state == "SERVING" else f"[red]{state}[/]")
    console.print(services)
    depth = Table("priority", "queued")
    for priority, runs_waiting in queue_status.depths.items():
        depth.add_row(str(priority), str(runs_waiting))
    console.print(depth)
    workers = Table("worker", "kind", "load", "tasks")
    for worker in queue_status.workers:
        workers.add_row(
            worker.worker_id,
            worker.kind,
            f"{worker.running}/{worker.concurrency}",
            ", ".join(worker.tasks),
        )
    console.print(workers)
    dead = queue_status.dead_letters
    console.print(
        f"dead letters: {'[red]' if dead else ''}{dead}{'[/]' if dead else ''}"
        + (f" (oldest {_when(queue_status.oldest_dead_letter)})" if dead else "")
        + f"   waiting for history: {queue_status.outbox_pending}"
    )
    for loop in queue_status.degraded_loops:
        console.print(f"[red]degraded:[/] {loop.name} since {_when(loop.since)}: {loop.error}")


async def _health(address: str) -> str:
    """A service's gRPC health, or why it cannot be asked."""
    channel = open_channel(address)
    try:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=2
        )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
    except grpc.aio.AioRpcError as error:
        return error.code().name
    finally:
        await channel.close(None)


@app.command()
def abort(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    reason: Annotated[str, typer.Option(help="Why, kept on the run.")] = "aborted from the CLI",
    as_json: JsonOption = False,
) -> None:
    """Abort a queued or running run."""
    _print_run(_call(lambda client: client.abort(run_id, reason)), as_json)


@app.command()
def runs(
    task: Annotated[str, typer.Option(help="Only runs of this task.")] = "",
    state_filter: Annotated[
        list[TaskState] | None,
        typer.Option("--state", help="Only runs in this state (repeatable)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="How many runs (at most 500).")] = 20,
    cursor: Annotated[str, typer.Option(help="Cursor printed by the previous page.")] = "",
    as_json: JsonOption = False,
) -> None:
    """List stored runs, newest first."""
    page = _call(
        lambda client: client.list_runs(
            task=task, state=state_filter or (), limit=limit, cursor=cursor
        )
    )
    if as_json:
        console.print_json(
            data={"runs": [_run_json(item) for item in page.runs], "next_cursor": page.next_cursor}
        )
        return
    table = Table("id", "task", "state", "queued", "duration", "attempt")
    for item in page.runs:
        duration = f"{item.duration * 1000:.1f} ms" if item.duration is not None else "-"
        table.add_row(
            item.id, item.task, _state(item), _when(item.queued), duration, str(item.attempt)
        )
    console.print(table)
    if page.next_cursor:
        console.print(f"next page: --cursor {page.next_cursor}")


@dead_letters_app.callback()
def dead_letters(
    typer_context: typer.Context,
    limit: Annotated[int, typer.Option(help="How many (at most 500).")] = 50,
    cursor: Annotated[str, typer.Option(help="Cursor printed by the previous page.")] = "",
    as_json: JsonOption = False,
) -> None:
    """List dead letters, oldest first."""
    if typer_context.invoked_subcommand is not None:
        return
    letters, next_cursor = _call(lambda client: client.dead_letters(limit, cursor))
    if as_json:
        console.print_json(
            data={
                "dead_letters": [asdict(letter) for letter in letters],
                "next_cursor": next_cursor,
            },
            default=str,
        )
        return
    table = Table("id", "run", "task", "state", "version", "stored", "size", "reason")
    for letter in letters:
        table.add_row(
            letter.id,
            letter.run_id,
            letter.task,
            str(letter.state),
            str(letter.version),
            _when(letter.time),
            f"{letter.size_bytes} B",
            letter.reason,
        )
    console.print(table)
    if next_cursor:
        console.print(f"next page: --cursor {next_cursor}")


DeadLetterIds = Annotated[list[str] | None, typer.Argument(help="Dead-letter ids.")]
EveryOption = Annotated[bool, typer.Option("--all", help="Every dead letter.")]


@dead_letters_app.command("retry")
def retry_dead_letters(ids: DeadLetterIds = None, every: EveryOption = False) -> None:
    """Send dead letters to history again."""
    retried = _call(lambda client: client.retry_dead_letters(ids or (), every=every))
    console.print(f"{retried} dead letter(s) sent to history again")


@dead_letters_app.command("drop")
def drop_dead_letters(ids: DeadLetterIds = None, every: EveryOption = False) -> None:
    """Forget dead letters."""
    dropped = _call(lambda client: client.drop_dead_letters(ids or (), every=every))
    console.print(f"{dropped} dead letter(s) dropped")


@tasks_app.callback()
def tasks(typer_context: typer.Context, as_json: JsonOption = False) -> None:
    """List registered tasks (or enable/disable one)."""
    if typer_context.invoked_subcommand is not None:
        return
    infos, schedules = _call(_tasks_and_schedules)
    if as_json:
        console.print_json(data=[_task_json(info, schedules.get(info.name)) for info in infos])
        return
    table = Table(
        "task",
        "kind",
        "enabled",
        "workers",
        "running",
        "schedule",
        "next fire",
        "last run",
        "description",
    )
    for info in infos:
        schedule = schedules.get(info.name)
        last_run = "-"
        if schedule is not None and schedule.last_run_id:
            last_run = f"{_when(schedule.last_slot)}\n[dim]{schedule.last_run_id}[/]"
        table.add_row(
            info.name,
            "cpu" if info.cpu_bound else "io",
            "yes" if info.enabled else "[yellow]no[/]",
            str(info.workers),
            str(info.running),
            info.schedule or "-",
            _when(schedule.next_fire if schedule else None),
            last_run,
            info.short_description,
        )
    console.print(table)


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


def _task_json(info: TaskInfo, schedule: ScheduleInfo | None = None) -> dict[str, Any]:
    data = asdict(info)
    data["tags"] = sorted(info.tags)
    data["next_fire"] = schedule.next_fire.isoformat() if schedule and schedule.next_fire else None
    data["last_slot"] = schedule.last_slot.isoformat() if schedule and schedule.last_slot else None
    data["last_run_id"] = schedule.last_run_id if schedule else ""
    return data


@tasks_app.command("enable")
def enable_task(name: Annotated[str, typer.Argument(help="Task name.")]) -> None:
    """Enable a task."""
    _call(lambda client: client.set_task_enabled(name, True))
    console.print(f"task {name} enabled")


@tasks_app.command("disable")
def disable_task(name: Annotated[str, typer.Argument(help="Task name.")]) -> None:
    """Disable a task: its runs end aborted until it is enabled again."""
    _call(lambda client: client.set_task_enabled(name, False))
    console.print(f"task {name} disabled")


def main() -> None:
    app()
