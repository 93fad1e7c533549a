"""Tasks of the TaskManager tests: deps from the module, children queued without await."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic import BaseModel

from fluid.scheduler import TaskRun, provide_deps, task
from fluid.scheduler.db import TaskHistoryQuery, get_db_plugin


@dataclass
class Deps:
    """What the module's processes share: here, who made it."""

    made_by: int
    closed: bool = False


@contextlib.asynccontextmanager
async def lifespan() -> AsyncIterator[Deps]:
    made = Deps(made_by=os.getpid())
    try:
        yield made
    finally:
        made.closed = True


deps = provide_deps(lifespan)


class Greeting(BaseModel):
    name: str


@task
async def hello(ctx: TaskRun[Greeting]) -> str:
    return f"Hello {ctx.params.name}!"


@task
async def nap(ctx: TaskRun) -> str:
    await asyncio.sleep(float(ctx.params.get("seconds", 0.5)))
    return "rested"


@task
async def fan_out(ctx: TaskRun) -> str:
    """Queues its child as the seed writes it: no await."""
    ctx.task_manager.queue("hello", name="child")
    return "queued"


@task
async def io_deps(ctx: TaskRun[BaseModel, Deps]) -> int:
    return ctx.deps.made_by


@task(cpu_bound=True)
async def cpu_deps(ctx: TaskRun[BaseModel, Deps]) -> int:
    return ctx.deps.made_by


@task(max_concurrency=1)
async def single(ctx: TaskRun) -> str:
    await asyncio.sleep(0.5)
    return "alone"


@task
async def report(ctx: TaskRun) -> list[str]:
    """Reads history from inside a task, as the seed's db plugin docs show."""
    db_plugin = get_db_plugin(ctx.task_manager)
    page = await db_plugin.get_history(TaskHistoryQuery(task="hello", limit=10))
    return [run.id for run in page.data]
