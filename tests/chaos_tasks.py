"""A task that checks the queue's promises from inside, for the chaos test.

Every attempt registers itself (worker pid) in Redis while it runs. A second live
attempt of the same run, or more live attempts of the task than its max_concurrency,
is recorded as a violation. Attempts of killed workers stay registered, so only live
pids count.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel

from fluid.scheduler import RetryPolicy, TaskRun, task

LIMIT = 8


class Probe(BaseModel):
    redis_url: str
    prefix: str
    seconds: float = 0.1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _live(members: set[Any]) -> list[str]:
    return [str(m) for m in members if _alive(int(str(m).split(":")[0]))]


# Over the limit a run waits and tries again (unlimited) instead of ending rate_limited.
@task(
    max_concurrency=LIMIT,
    timeout_seconds=30,
    rate_limit_retry=RetryPolicy(wait=0.05, backoff=1.5, max_wait=0.5),
)
async def guarded_nap(ctx: TaskRun[Probe]) -> int:
    me = f"{os.getpid()}:{ctx.id}:{ctx.attempt}"
    prefix = ctx.params.prefix
    async with aioredis.Redis.from_url(ctx.params.redis_url, decode_responses=True) as redis:
        await redis.incr(f"{prefix}:executions:{ctx.id}")
        await redis.sadd(f"{prefix}:active", me)
        try:
            active = _live(await redis.smembers(f"{prefix}:active"))
            if len(active) > LIMIT:
                await redis.rpush(f"{prefix}:violations", f"concurrency {len(active)}: {active}")
            twins = [m for m in active if m.split(":")[1] == ctx.id and m != me]
            if twins:
                await redis.rpush(f"{prefix}:violations", f"run {ctx.id} twice: {twins} {me}")
            await asyncio.sleep(ctx.params.seconds)
        finally:
            await redis.srem(f"{prefix}:active", me)
        await redis.incr(f"{prefix}:done")
    return os.getpid()
