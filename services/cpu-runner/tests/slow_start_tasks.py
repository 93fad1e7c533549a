"""A task module whose import, in a run's process, outlasts the start-up allowance a test
sets: the process never gets to start the task function.

Only there: the runner (and the test) import it without the wait, as the fork server does,
so it is for a fresh interpreter or a Job.
"""

from __future__ import annotations

import time

from fluid.scheduler import TaskRun, task
from fluid.scheduler.common import is_in_cpu_process

if is_in_cpu_process():
    time.sleep(60)


@task(cpu_bound=True, timeout_seconds=5)
async def never_starts(ctx: TaskRun) -> None:
    return None
