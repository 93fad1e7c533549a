"""The `fluid` command: run the system (dev, serve) and operate it (queue, runs, tasks).

This module assembles it; `fluid --help` lists the commands in the order they are added.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from . import operate, runs, system
from .app import app
from .auth import auth_app
from .tasks import tasks_app

__all__ = ["app", "main"]

COMMANDS_ENTRY_POINT_GROUP = "fluid.commands"

for _command in (
    system.dev,
    system.serve,
    runs.queue,
    runs.run,
    runs.logs,
    operate.status,
    runs.abort,
    runs.runs,
):
    app.command()(_command)
app.add_typer(tasks_app, name="tasks")
app.add_typer(operate.dead_letters_app, name="dead-letters")
app.add_typer(auth_app, name="auth")
# Installed services add their own sub-commands (e.g. `fluid history migrate`) without
# this package importing them.
for _installed in entry_points(group=COMMANDS_ENTRY_POINT_GROUP):
    app.add_typer(_installed.load(), name=_installed.name)


def main() -> None:
    app()
