"""Commands that run the system: `fluid dev` (everything in one process) and `fluid serve`."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from typing import Annotated, Any

import typer

from fluid.service.auth import AuthSettings
from fluid.service.host import Host, available_services
from fluid.service.logs import LogFormat, configure_logging
from fluid.service.settings import ServerSettings, TaskModuleSettings

from .auth import prepare_dev_auth
from .render import console, print_error

logger = logging.getLogger("fluid.cli")

EXAMPLE_TASKS = "fluid_cli.examples"
# `fluid serve` exits with this when it would listen beyond loopback with no auth.
EXIT_OPEN_TO_NETWORK = 2

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
    refuse_open_network: bool = False,
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
    auth = AuthSettings()
    beyond_loopback = not (auth.enabled or _loopback(settings.host))
    if refuse_open_network and beyond_loopback and not auth.insecure:
        print_error(
            f"refusing to serve on {settings.host} without auth: anyone who can reach "
            "the port could call every RPC. Set FLUID_AUTH_KEY_FILES (see the README's "
            "Tokens and roles), bind 127.0.0.1, or set FLUID_INSECURE=true to serve "
            "open anyway"
        )
        raise typer.Exit(EXIT_OPEN_TO_NETWORK)
    configure_logging(settings.log_level, settings.log_format)
    if beyond_loopback:
        # Said on every start, so that a log review finds an open port it did not expect.
        logger.warning(
            "serving on %s without auth (FLUID_INSECURE=true): every RPC is open to "
            "anyone who can reach the port",
            settings.host,
        )
    try:
        asyncio.run(Host(names, settings=settings, task_modules=modules).run_until_signal())
    except (ValueError, OSError) as error:
        print_error(str(error))
        raise typer.Exit(1) from None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to anything


def dev(
    port: Annotated[int | None, typer.Option(help="Port to serve every service on.")] = None,
    http_port: Annotated[
        int | None,
        typer.Option(help="Port of the HTTP gateway (FLUID_HTTP_PORT, default 8080; 0: any)."),
    ] = None,
    tasks: TasksOption = None,
    auth: Annotated[
        bool,
        typer.Option("--auth", help="Require tokens: writes a signing key and .fluid/admin.token."),
    ] = False,
) -> None:
    """Run every installed service in one process on one port, with example tasks."""
    names = list(available_services())
    port = port if port is not None else ServerSettings().port
    modules = _modules(tasks, [EXAMPLE_TASKS])
    if http_port is not None:
        # The gateway reads its settings like every service: from the environment.
        os.environ["FLUID_HTTP_PORT"] = str(http_port)
    console.print(
        f"[bold]fluid dev[/]: {', '.join(names)} on 127.0.0.1:{port}, tasks from "
        f"{', '.join(modules)}\n  try: [cyan]uv run fluid queue say_hi name=Ada --wait[/]"
        "  then [cyan]uv run fluid runs[/]"
    )
    if "gateway" in names:
        http = os.environ.get("FLUID_HTTP_PORT", "8080")
        console.print(
            f"  dashboard: [cyan]http://127.0.0.1:{http}/[/]  HTTP API: /tasks, docs at /docs"
            if http != "0"
            else "  HTTP: on a free port, logged when it listens"
        )
    if auth:
        token_file = prepare_dev_auth()
        console.print(
            f"  auth required: an admin token is in [bold]{token_file}[/]; "
            f"[cyan]export FLUID_TOKEN=$(cat {token_file})[/] before the commands above"
        )
    _serve(names, port, None, modules, log_format="pretty")


def serve(
    service: Annotated[str, typer.Argument(help="Service to run, e.g. dispatcher, io-worker.")],
    port: Annotated[int | None, typer.Option(help="Port to listen on (FLUID_PORT).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind (FLUID_HOST).")] = None,
    tasks: TasksOption = None,
) -> None:
    """Run one service (its settings come from FLUID_* environment variables).

    It refuses to listen beyond loopback without auth (FLUID_AUTH_KEY_FILES) unless
    FLUID_INSECURE=true.
    """
    _serve([service], port, host, _modules(tasks, []), refuse_open_network=True)
