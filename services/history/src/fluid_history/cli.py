"""``fluid history ...``: operate the history database.

The ``fluid`` CLI finds this typer app through the ``fluid.commands`` entry point group,
so the CLI package never imports a service. SQLAlchemy and Alembic are imported inside
the commands: every ``fluid`` invocation loads this module, and only these commands need
them (half a second of imports).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from fluid.scheduler.errors import UnavailableError

from .settings import HistorySettings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

app = typer.Typer(help="Operate the history database.", no_args_is_help=True)

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="The database; default FLUID_DATABASE_URL (or the embedded SQLite file).",
        show_default=False,
    ),
]


@app.command()
def migrate(
    url: DatabaseOption = None,
    revision: Annotated[str, typer.Option(help="Revision to upgrade to.")] = "head",
) -> None:
    """Upgrade the history database schema (Alembic); run once per release before serving."""
    from .store import migrate as migrations

    async def upgrade(engine: AsyncEngine) -> set[str]:
        await migrations.upgrade(engine, revision)
        return await migrations.current_revisions(engine)

    shown, current = _on_database(url, upgrade)
    typer.echo(f"history database {shown} at revision {', '.join(sorted(current)) or 'none'}")


@app.command()
def revision(
    message: Annotated[str, typer.Argument(help="What the revision changes.")],
    url: DatabaseOption = None,
) -> None:
    """For developers: write the next migration, the difference between store/schema.py
    and a database at head (Alembic autogenerate; review the file it prints)."""
    from .store import migrate as migrations

    _, path = _on_database(url, lambda engine: migrations.new_revision(engine, message))
    typer.echo(path)


def _on_database(
    url: str | None, operation: Callable[[AsyncEngine], Awaitable[T]]
) -> tuple[str, T]:
    """``operation``'s result on an engine for ``url``, and the URL fit to print."""
    from .store.engine import database_url, open_engine

    try:
        target = database_url(url or HistorySettings().database_url)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    shown = target.render_as_string(hide_password=True)

    async def run() -> T:
        engine = open_engine(target)
        try:
            return await operation(engine)
        finally:
            await engine.dispose()

    try:
        return shown, asyncio.run(run())
    except UnavailableError as error:
        typer.echo(f"error: cannot reach {shown}: {error}", err=True)
        raise typer.Exit(1) from None
