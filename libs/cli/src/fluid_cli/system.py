"""Commands that run the system: `fluid dev` (everything in one process) and `fluid serve`."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any

import typer

from fluid.service.host import Host, available_services
from fluid.service.logs import LogFormat, configure_logging
from fluid.service.settings import ServerSettings, TaskModuleSettings

from .render import console, print_error

EXAMPLE_TASKS = "fluid_cli.examples"

TasksOption = Annotated[
    list[str] | None,
    typer.Option(
        "--tasks",
        help="Module defining tasks (repeatable; env FLUID_TASK_MODULES, comma-separated).",
    ),
]


def _modules(tasks: list[str] | None, default: list[str]) -> list[str]:
    # --tasks, else FLUID_TASK_MODULES read as the workers read it, else the default.
    return tasks or TaskModuleSettings().task_modules or default


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
        print_error(str(error))
        raise typer.Exit(1) from None


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


def serve(
    service: Annotated[str, typer.Argument(help="Service to run, e.g. dispatcher, io-worker.")],
    port: Annotated[int | None, typer.Option(help="Port to listen on (FLUID_PORT).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind (FLUID_HOST).")] = None,
    tasks: TasksOption = None,
) -> None:
    """Run one service (its settings come from FLUID_* environment variables)."""
    _serve([service], port, host, _modules(tasks, []))
