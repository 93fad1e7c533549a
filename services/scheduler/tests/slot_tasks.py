"""Scheduled tasks of the scheduler's tests: every run records the slot it was queued for.

A scheduled run's ``execute_after`` is its slot (these tasks have no jitter), so the run
knows its slot. With ``SLOT_PROBE_REDIS_URL`` and ``SLOT_PROBE_KEY`` set (worker processes
of the end-to-end tests) each run appends ``{"slot": epoch seconds, "run": id}`` to the
Redis list ``<key>:<task>``; otherwise (an embedded system in the test's own process) to
``RECORDED[task]``.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from datetime import timedelta

import redis.asyncio as aioredis

from fluid.scheduler import TaskRun, every, task

RECORDED: defaultdict[str, list[float]] = defaultdict(list)


async def _record(ctx: TaskRun) -> None:
    assert ctx.run.execute_after is not None, "a scheduled run carries its slot"
    slot = ctx.run.execute_after.timestamp()
    url, key = os.environ.get("SLOT_PROBE_REDIS_URL"), os.environ.get("SLOT_PROBE_KEY")
    if not (url and key):
        RECORDED[ctx.task.name].append(slot)
        return
    async with aioredis.Redis.from_url(url) as redis:
        await redis.rpush(f"{key}:{ctx.task.name}", json.dumps({"slot": slot, "run": ctx.id}))


@task(schedule=every(timedelta(seconds=1)))
async def every_second(ctx: TaskRun) -> None:
    """Missed slots are skipped (the default policy)."""
    await _record(ctx)


@task(schedule=every(timedelta(seconds=1), catch_up=True))
async def every_second_catch_up(ctx: TaskRun) -> None:
    """Missed slots are folded into one catch-up run."""
    await _record(ctx)
