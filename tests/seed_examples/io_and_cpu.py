"""task-queue.md, tasks.txt and task-queue-v1.txt, "IO Bound Tasks" and "CPU bound tasks":
as written, both in one module (the cpu one queues the io one). Stand-ins for the
docs' ``http_cli`` and ``datastore_cli`` come first; the datastore is a file, since the
cpu-bound task reads it from its own process.

The docs name the io task ``fecth_data`` and queue ``"fetch_data"`` from the cpu task:
fluid refuses a run of an unknown task when it is queued (the seed's consumer dropped it
with a log line), so that queue fails the cpu run, saying which task is unknown.
"""

import json
import os
import tempfile
from pathlib import Path


class _Http:
    async def get(self, url: str) -> dict[str, str]:
        return {"fetched": url}


class _Datastore:
    """Keeps each value in a file of its own, readable from any process."""

    @property
    def folder(self) -> Path:
        return Path(os.environ.get("SEED_DATASTORE", tempfile.gettempdir()))

    async def stote(self, data: object) -> str:
        path = self.folder / f"data-{os.getpid()}-{id(data)}.json"
        path.write_text(json.dumps(data))
        return path.name

    async def get(self, data_id: str) -> object:
        return json.loads((self.folder / data_id).read_text())


http_cli = _Http()
datastore_cli = _Datastore()

# -- the examples ---------------------------------------------------------------------
from fluid.scheduler import task, TaskRun
from pydantic import BaseModel


class Scrape(BaseModel):
    url: str = "https://"


@task
async def fecth_data(ctx: TaskRun[Scrape]) -> None:
    # fetch data
    data = await http_cli.get(ctx.params.url)
    data_id = await datastore_cli.stote(data)
    # trigger another task
    ctx.task_manager.queue("heavy_calculation", data_id=data_id)


@task(cpu_bound=True)
async def heavy_calculation(ctx: TaskRun) -> None:
    data = await datastore_cli.get(ctx.params["data_id"])
    # perform some heavy calculation
    ...
    # trigger another task
    ctx.task_manager.queue("fetch_data")
