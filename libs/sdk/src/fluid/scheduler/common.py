"""Helpers shared by the task decorator and the processes that execute tasks."""

from __future__ import annotations

import os

CPU_PROCESS_ENV = "TASK_MANAGER_SPAWN"


def is_in_cpu_process() -> bool:
    """True inside the separate process that executes a ``cpu_bound`` run."""
    return os.environ.get(CPU_PROCESS_ENV, "").lower() in ("1", "true", "yes")
