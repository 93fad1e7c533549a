"""Imports the user's task modules and collects the tasks they define."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable

from .task import Task, tasks_in_module


class TaskModuleError(ValueError):
    """A task module cannot be imported, or two tasks share a name."""


def load_tasks(modules: Iterable[str]) -> dict[str, Task]:
    """Every task defined at the top level of ``modules``, by name."""
    # `fluid dev --tasks mytasks` run from a project folder must find mytasks.py there.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    tasks: dict[str, Task] = {}
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise TaskModuleError(f"cannot import task module {name!r}: {exc}") from exc
        for found in tasks_in_module(module):
            other = tasks.get(found.name)
            if other is not None and other is not found:
                raise TaskModuleError(
                    f"two tasks are named {found.name!r}: in {other.module} and {found.module}"
                )
            tasks[found.name] = found
    return tasks
