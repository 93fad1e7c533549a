"""The `fluid` Typer app, its global options and how a command talks to the system."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from fluid.scheduler import Client
from fluid.scheduler.errors import FluidError, UnavailableError
from fluid.service.settings import DEFAULT_ADDRESS, ClientSettings

from .render import print_error

T = TypeVar("T")

app = typer.Typer(
    help="fluid: a distributed task queue for Python async code.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

AddressOption = Annotated[
    str,
    typer.Option(
        "--address", envvar="FLUID_ADDRESS", help="host:port of the fluid system (dispatcher)."
    ),
]
TokenOption = Annotated[
    str,
    typer.Option(
        "--token",
        envvar="FLUID_TOKEN",
        show_default=False,
        help="Bearer token every call sends (`fluid auth token` mints one).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
TaskNameArgument = Annotated[str, typer.Argument(help="Task name.")]
CursorOption = Annotated[str, typer.Option(help="Cursor printed by the previous page.")]


class _State:
    address: str = DEFAULT_ADDRESS
    token: str = ""


# The global options, set by the callback before any command runs.
state = _State()


@app.callback()
def main_options(address: AddressOption = DEFAULT_ADDRESS, token: TokenOption = "") -> None:
    state.address = address
    state.token = token


def _client() -> Client:
    # FLUID_DISPATCHER_ADDRESS / FLUID_HISTORY_ADDRESS still win when set.
    return Client(settings=ClientSettings(address=state.address), token=state.token)


def call(operation: Callable[[Client], Awaitable[T]]) -> T:
    """Run one client operation; fluid's errors become one red line and exit code 1."""

    async def run() -> T:
        async with _client() as client:
            return await operation(client)

    try:
        return asyncio.run(run())
    except UnavailableError as error:
        print_error(f"cannot reach fluid at {state.address} ({error})")
    except FluidError as error:
        print_error(str(error))
    raise typer.Exit(1)
