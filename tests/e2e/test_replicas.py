"""Two dispatchers on one Redis serve the same workers without delivering a run twice."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from fluid.scheduler import Client, TaskState

from process_helpers import free_port, serve, serving, stop_processes
from servers import redis_url, wipe_redis

TESTS = Path(__file__).parent.parent
RUNS = 300


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[dict[str, str]]:
    url = redis_url()
    namespace = f"replicas-{uuid.uuid4().hex[:10]}"
    ports = {"a": free_port(), "b": free_port()}
    base = {
        **os.environ,
        "PYTHONPATH": str(TESTS),
        "FLUID_BROKER_URL": url,
        "FLUID_BROKER_NAMESPACE": namespace,
        "FLUID_HISTORY_FORWARD": "false",
        "FLUID_TASK_MODULES": "chaos_tasks",
        "FLUID_LEASE_WAIT_SECONDS": "0.2",
    }
    processes = []
    for name, port in ports.items():
        # Dispatcher `name` and a worker that talks only to it.
        for service, listen in (("dispatcher", port), ("io-worker", free_port())):
            env = {**base, "FLUID_DISPATCHER_ADDRESS": f"127.0.0.1:{port}"}
            processes.append(serve(service, listen, env, tmp_path / f"{service}-{name}.log"))
    try:
        yield {
            "a": f"127.0.0.1:{ports['a']}",
            "b": f"127.0.0.1:{ports['b']}",
            "redis_url": url,
            "prefix": namespace,
        }
    finally:
        stop_processes(processes)
        wipe_redis(url, namespace)


async def test_two_dispatchers_deliver_each_run_once(replicas: dict[str, str]) -> None:
    await serving(replicas["a"])
    await serving(replicas["b"])
    url, prefix = replicas["redis_url"], replicas["prefix"]
    async with (
        Client(replicas["a"]) as via_a,
        Client(replicas["b"]) as via_b,
        aioredis.Redis.from_url(url, decode_responses=True) as redis,
    ):
        for _ in range(200):  # both workers registered (one through each dispatcher)
            tasks = {info.name: info for info in await via_a.list_tasks()}
            if "guarded_nap" in tasks and tasks["guarded_nap"].workers == 2:
                break
            await asyncio.sleep(0.05)
        params = {"redis_url": url, "prefix": prefix, "seconds": 0.01}
        runs = await via_a.queue_many("guarded_nap", [params] * (RUNS // 2))
        runs += await via_b.queue_many("guarded_nap", [params] * (RUNS // 2))
        # Each client watches its runs through either dispatcher: the state is shared.
        done = [
            await (via_b if i % 2 else via_a).wait(run.id, timeout=60) for i, run in enumerate(runs)
        ]
        executions = [int(await redis.get(f"{prefix}:executions:{run.id}") or 0) for run in runs]
        violations = await redis.lrange(f"{prefix}:violations", 0, -1)

    assert {run.state for run in done} == {TaskState.success}
    assert executions == [1] * RUNS
    assert violations == []
    # Both workers, each behind its own dispatcher, took part.
    assert len({run.result for run in done}) == 2
