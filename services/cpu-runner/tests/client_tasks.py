"""Tasks that call fluid with a bare ``Client()``, as task code does: one on the io-worker's
event loop, one in a cpu-bound run's process. Each says which tasks the dispatcher it
reached knows, and whether the history it reached stored a given run."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from fluid.scheduler import Client, TaskRun, task


class Lookup(BaseModel):
    run_id: str = ""


async def _look_around(run_id: str) -> dict[str, object]:
    async with Client() as client:
        tasks = sorted(info.definition.name for info in await client.list_tasks())
        stored = False
        # History records a run shortly after it ended: bounded polling.
        for _ in range(200 if run_id else 0):
            page = await client.list_runs(limit=100)
            stored = any(run.id == run_id for run in page.runs)
            if stored:
                break
            await asyncio.sleep(0.05)
    return {"tasks": tasks, "stored": stored}


@task
async def io_look_around(ctx: TaskRun[Lookup]) -> dict[str, object]:
    return await _look_around(ctx.params.run_id)


@task(cpu_bound=True)
async def cpu_look_around(ctx: TaskRun[Lookup]) -> dict[str, object]:
    return await _look_around(ctx.params.run_id)
