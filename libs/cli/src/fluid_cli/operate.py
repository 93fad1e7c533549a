"""Commands that watch over the system: `fluid status` and `fluid dead-letters`."""

from __future__ import annotations

from typing import Annotated

import grpc
import typer
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fluid.scheduler import Client
from fluid.scheduler.limits import PAGE_DEFAULT, PAGE_MAX
from fluid.scheduler.status import QueueStatus
from fluid.service.channel import open_channel

from .app import CursorOption, JsonOption, call
from .render import console, print_dead_letters, print_status

dead_letters_app = typer.Typer(
    help="Run snapshots history refused: list them (default), send them again or drop them.",
    invoke_without_command=True,
)
DeadLetterIds = Annotated[list[str] | None, typer.Argument(help="Dead-letter ids.")]
EveryOption = Annotated[bool, typer.Option("--all", help="Every dead letter.")]


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

    health, queue_status = call(operation)
    print_status(health, queue_status, as_json)


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


@dead_letters_app.callback()
def dead_letters(
    typer_context: typer.Context,
    limit: Annotated[int, typer.Option(help=f"How many (at most {PAGE_MAX}).")] = PAGE_DEFAULT,
    cursor: CursorOption = "",
    as_json: JsonOption = False,
) -> None:
    """List dead letters, oldest first."""
    if typer_context.invoked_subcommand is not None:
        return
    letters, next_cursor = call(lambda client: client.dead_letters(limit, cursor))
    print_dead_letters(letters, next_cursor, as_json)


@dead_letters_app.command("retry")
def retry_dead_letters(ids: DeadLetterIds = None, every: EveryOption = False) -> None:
    """Send dead letters to history again."""
    retried = call(lambda client: client.retry_dead_letters(ids or (), every=every))
    console.print(f"{retried} dead letter(s) sent to history again")


@dead_letters_app.command("drop")
def drop_dead_letters(ids: DeadLetterIds = None, every: EveryOption = False) -> None:
    """Forget dead letters."""
    dropped = call(lambda client: client.drop_dead_letters(ids or (), every=every))
    console.print(f"{dropped} dead letter(s) dropped")
