"""Example tasks `fluid dev` runs when no --tasks module is given.

Try them: `fluid queue say_hi name=Ada --wait`, `fluid queue fan_out count=3 --wait`.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

from pydantic import BaseModel, Field

from fluid.scheduler import RetryPolicy, TaskRun, every, task


class Greeting(BaseModel):
    name: str = Field(description="who to greet")


@task
async def say_hi(ctx: TaskRun[Greeting]) -> str:
    """Greet someone and return the greeting."""
    message = f"Hi {ctx.params.name}!"
    ctx.logger.info(message)
    return message


class FanOut(BaseModel):
    count: int = Field(default=2, ge=1, le=100)


@task(retry=RetryPolicy(max_attempts=2, wait=0.5))
async def fan_out(ctx: TaskRun[FanOut]) -> list[str]:
    """Queue `count` say_hi child runs; each records this run as its parent."""
    children = [await ctx.queue("say_hi", name=f"child {i}") for i in range(ctx.params.count)]
    return [child.id for child in children]


@task(schedule=every(timedelta(seconds=30)))
async def heartbeat(ctx: TaskRun) -> str:
    """A periodic task: fires every 30 seconds once a scheduler runs."""
    await asyncio.sleep(0.01)
    return "alive"


class Digest(BaseModel):
    rounds: int = Field(default=200_000, ge=1, le=50_000_000)


@task(cpu_bound=True, timeout_seconds=120)
async def digest(ctx: TaskRun[Digest]) -> str:
    """A cpu-bound task: hashes repeatedly, away from any event loop."""
    value = b"fluid"
    for _ in range(ctx.params.rounds):
        value = hashlib.sha256(value).digest()
    return value.hex()
