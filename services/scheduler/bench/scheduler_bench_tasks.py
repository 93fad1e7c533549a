"""BENCH_SCHEDULER_TASKS no-op tasks (default 20), each every BENCH_SCHEDULER_INTERVAL seconds.

They share their slots, so every slot fires them all at once: the scheduler's concurrent
QueueRun calls are part of what the benchmark measures.
"""

from __future__ import annotations

import os
from datetime import timedelta

from fluid.scheduler import Task, TaskRun, every, task

TASKS = int(os.environ.get("BENCH_SCHEDULER_TASKS", "20"))
INTERVAL = float(os.environ.get("BENCH_SCHEDULER_INTERVAL", "1"))


async def _noop(ctx: TaskRun) -> None:
    return None


def _periodic(index: int) -> Task:
    return task(name=f"bench_tick_{index}", schedule=every(timedelta(seconds=INTERVAL)))(_noop)


# The worker collects the Task objects defined at the top level of the module.
globals().update({f"bench_tick_{index}": _periodic(index) for index in range(TASKS)})
