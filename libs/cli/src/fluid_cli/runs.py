"""Commands on runs: queue them, show one (and its output), abort one, list stored ones."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fluid.scheduler import Client, Run, TaskPriority, TaskState
from fluid.scheduler.errors import NotFoundError
from fluid.scheduler.limits import PAGE_MAX

from .app import CursorOption, JsonOption, TaskNameArgument, call
from .render import (
    errors,
    print_error,
    print_output,
    print_run,
    print_run_page,
    print_run_summary,
)

RunIdArgument = Annotated[str, typer.Argument(help="Run id.")]


async def find_run(client: Client, run_id: str) -> Run:
    """A run live from the dispatcher, else as history stored it.

    The dispatcher has the latest state of a run it still holds; history has every run
    the dispatcher has handed over and forgotten. ``NotFoundError`` when neither has it.
    """
    try:
        return await client.get_run(run_id)
    except NotFoundError:
        return await client.get_stored_run(run_id)


def _parse_param(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        print_error(f"params are key=value, got {item!r}")
        raise typer.Exit(2)
    try:
        # Numbers, booleans, lists and objects as JSON; anything else is a string.
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def queue(
    task: TaskNameArgument,
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

    run = call(operation)
    print_run(run, as_json)
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
        # On stderr, and not at all with --json, so that stdout stays the summary alone.
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

    runs = call(operation)
    print_run_summary(task, runs, as_json)
    if wait and any(run.is_failure for run in runs):
        raise typer.Exit(1)


def run(run_id: RunIdArgument, as_json: JsonOption = False) -> None:
    """Show one run: live from the dispatcher, else from history."""
    print_run(call(lambda client: find_run(client, run_id)), as_json)


def logs(run_id: RunIdArgument) -> None:
    """Print a run's output tail: what it logged (io runs), or printed and logged (cpu runs)."""
    print_output(call(lambda client: find_run(client, run_id)))


def abort(
    run_id: RunIdArgument,
    reason: Annotated[str, typer.Option(help="Why, kept on the run.")] = "aborted from the CLI",
    as_json: JsonOption = False,
) -> None:
    """Abort a queued or running run."""
    print_run(call(lambda client: client.abort(run_id, reason)), as_json)


def runs(
    task: Annotated[str, typer.Option(help="Only runs of this task.")] = "",
    state_filter: Annotated[
        list[TaskState] | None,
        typer.Option("--state", help="Only runs in this state (repeatable)."),
    ] = None,
    limit: Annotated[int, typer.Option(help=f"How many runs (at most {PAGE_MAX}).")] = 20,
    cursor: CursorOption = "",
    as_json: JsonOption = False,
) -> None:
    """List stored runs, newest first."""
    page = call(
        lambda client: client.list_runs(
            task=task, state=state_filter or (), limit=limit, cursor=cursor
        )
    )
    print_run_page(page, as_json)
