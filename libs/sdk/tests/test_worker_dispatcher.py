"""A worker against a real dispatcher in this process, over gRPC.

A worker once stopped reporting for good after one run returned a result too large for
a message: the dispatcher refused the batch and the worker sent it again forever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import BaseModel

from fluid.scheduler.client import Client
from fluid.scheduler.execution import execute_run
from fluid.scheduler.limits import MIB, limits
from fluid.scheduler.manager import TaskManager
from fluid.scheduler.models import RunReport, TaskState
from fluid.scheduler.run import Run
from fluid.scheduler.task import Task, TaskRun, task
from fluid.scheduler.v1 import dispatcher_pb2_grpc
from fluid.service.channel import open_channel
from fluid.service.host import Host
from fluid.service.settings import ServerSettings
from fluid.service.worker import LeasingWorker
from fluid.service.worker_link import DispatcherLink


class Size(BaseModel):
    chars: int


@task
async def sized(ctx: TaskRun[Size]) -> str:
    return "x" * ctx.params.chars


@pytest.fixture
def small_messages(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Limits under which a 5 MB result fits in no gRPC message (4 MiB at most)."""
    monkeypatch.setenv("FLUID_LIMIT_MESSAGE_BYTES", str(4 * MIB))
    monkeypatch.setenv("FLUID_LIMIT_BATCH_BYTES", str(2 * MIB))
    monkeypatch.setenv("FLUID_LIMIT_OUTPUT_LINES", "10")
    limits.cache_clear()
    yield
    limits.cache_clear()  # the next caller reads the environment monkeypatch restores


@pytest.fixture
async def dispatcher(monkeypatch: pytest.MonkeyPatch, small_messages: None) -> AsyncIterator[str]:
    monkeypatch.setenv("FLUID_BROKER_URL", "memory://")
    monkeypatch.setenv("FLUID_HISTORY_FORWARD", "false")
    host = Host(["dispatcher"], settings=ServerSettings(port=0, shutdown_grace_seconds=1))
    await host.start()
    yield host.address
    await host.stop()


async def test_a_result_too_large_fails_its_run_and_the_next_run_succeeds(dispatcher: str) -> None:
    channel = open_channel(dispatcher)
    async with Client(dispatcher) as client:
        manager = TaskManager.bound(client, {"sized": sized})

        async def execute(task: Task, run: Run) -> RunReport:
            return await execute_run(task, run, manager)

        worker = LeasingWorker(
            link=DispatcherLink(dispatcher_pb2_grpc.DispatcherServiceStub(channel)),
            executor=execute,
            tasks={"sized": sized},
            lifecycle=manager,
            lease_wait=0.2,
        )
        await worker.start()
        try:
            big = await client.queue_and_wait("sized", chars=5_000_000, timeout=10)
            small = await client.queue_and_wait("sized", chars=3, timeout=10)
        finally:
            await worker.stop(grace=1)
            await channel.close(None)
    assert big.state is TaskState.failure and big.result is None
    assert big.error is not None and big.error.type == "ResultTooLargeError"
    assert "FLUID_LIMIT_RESULT_BYTES" in big.error.message
    assert small.state is TaskState.success and small.result == "xxx"
