"""Waiting for history: the dispatcher forwards states asynchronously, by design."""

from __future__ import annotations

import asyncio

from fluid.scheduler import Client, NotFoundError, Run, TaskState, UnavailableError


async def stored_run(client: Client, run_id: str, state: TaskState, attempts: int = 100) -> Run:
    """The run as history stores it once it reached ``state`` (bounded polling)."""
    last: Run | None = None
    for _ in range(attempts):
        try:
            last = await client.get_stored_run(run_id)
        except NotFoundError:
            last = None
        if last is not None and last.state is state:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"history has {last!r} for run {run_id}, expected state {state}")


async def all_stored(
    client: Client, task: str, run_ids: set[str], state: TaskState, timeout: float = 30.0
) -> None:
    """Wait until history lists every run of ``run_ids`` in ``state`` (bounded polling).

    History answering UNAVAILABLE meanwhile (its database is away) only means "not yet".
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            stored = await _listed(client, task, state)
        except UnavailableError:
            stored = set()
        missing = run_ids - stored
        if not missing:
            return
        if loop.time() > deadline:
            raise AssertionError(
                f"history lacks {len(missing)} of {len(run_ids)} {task} runs in state {state}"
            )
        await asyncio.sleep(0.1)


async def _listed(client: Client, task: str, state: TaskState) -> set[str]:
    listed: set[str] = set()
    cursor = ""
    while True:
        page = await client.list_runs(task=task, state=state, limit=500, cursor=cursor)
        listed.update(run.id for run in page.runs)
        cursor = page.next_cursor
        if not cursor:
            return listed
