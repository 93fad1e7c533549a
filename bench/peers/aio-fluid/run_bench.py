"""aio-fluid (PyPI `aio-fluid`) on the bench workloads; run under .bench/aio-fluid/.

`python run_bench.py` drives the bench and prints one JSON line: it enqueues BENCH_RUNS runs
one TaskManager.queue call at a time with no consumer running, then starts this same file as
`worker` (one TaskConsumer process consuming the Redis broker) and measures it draining that
queue; then, for the round trips, it stops that worker and starts this file as `roundtrip`.
aio-fluid has no cross-process result API: a run's completion is an in-process dispatcher
event of the consumer that executed it, so the round trip runs inside one consumer process
(enqueue -> Redis LPUSH -> BRPOP by one of its workers -> run -> event).
Redis db 10; every key carries the bench token (the broker name, the task name) and is deleted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
for _name in [name for name in os.environ if name.upper().startswith("FLUID_")]:
    del os.environ[_name]  # the project's own FLUID_* settings are not aio-fluid's
import peer_kit  # noqa: E402

# aio-fluid's Redis pool is a BlockingConnectionPool of 5 connections by default; each
# consumer coroutine holds one in BRPOP, so it is sized to the consumer concurrency.
os.environ["MAX_REDIS_CONNECTIONS"] = str(peer_kit.WORKER_CONCURRENCY + 10)

import redis.asyncio as aioredis  # noqa: E402

from fluid.scheduler import (  # noqa: E402
    TaskConsumer,
    TaskManager,
    TaskManagerConfig,
    TaskRun,
    TaskState,
    task,
)

DB = 10
TOKEN = peer_kit.bench_token()
TASK_NAME = f"noop_{TOKEN}"
BROKER_URL = f"{peer_kit.redis_url(DB)}?name={TOKEN}"
ROUNDTRIP_KEY = f"{TOKEN}:roundtrip"
FINISHED = (TaskState.success, TaskState.failure, TaskState.aborted, TaskState.rate_limited)


async def _noop(context: TaskRun[Any]) -> None:
    """Does nothing: measures the queue, not the task."""


NOOP = task(name=TASK_NAME)(_noop)


def consumer() -> TaskConsumer:
    manager = TaskConsumer(
        config=TaskManagerConfig(
            broker_url=BROKER_URL, max_concurrent_tasks=peer_kit.WORKER_CONCURRENCY
        )
    )
    manager.register_task(NOOP)
    return manager


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def work() -> None:
    client = aioredis.Redis.from_url(peer_kit.redis_url(DB))
    counter = peer_kit.DoneCounter(client, TOKEN)
    manager = consumer()
    for state in FINISHED:
        manager.dispatcher.register_handler(f"{state}.bench", counter.hit)
    await manager.startup()
    counter.start()
    try:
        await wait_for_signal()
    finally:
        await manager.shutdown()
        await counter.stop()
        await client.aclose()


async def roundtrip() -> None:
    """Sequential round trips, each waiting on the dispatcher event of the run's end state."""
    client = aioredis.Redis.from_url(peer_kit.redis_url(DB))
    manager = consumer()
    waiting: dict[str, asyncio.Future[None]] = {}

    def finished(run: TaskRun[Any]) -> None:
        if (future := waiting.pop(run.id, None)) is not None and not future.done():
            future.set_result(None)

    for state in FINISHED:
        manager.dispatcher.register_handler(f"{state}.roundtrip", finished)
    await manager.startup()
    try:
        # Let the consumer coroutines reach BRPOP before timing anything.
        await asyncio.wait_for(manager.queue_and_wait(TASK_NAME, timeout=30), 30)

        async def on_event() -> None:
            run_id = uuid.uuid4().hex
            future = asyncio.get_running_loop().create_future()
            waiting[run_id] = future
            await manager.queue(TASK_NAME, run_id=run_id)
            await future

        figures = await peer_kit.round_trips(on_event)
        await client.set(ROUNDTRIP_KEY, json.dumps(figures))
    finally:
        await manager.shutdown()
        await client.aclose()


async def drive() -> dict[str, float]:
    client = aioredis.Redis.from_url(peer_kit.redis_url(DB))
    manager = TaskManager(config=TaskManagerConfig(broker_url=BROKER_URL))
    manager.register_task(NOOP)
    try:
        async with manager:

            async def enqueue() -> None:
                await manager.queue(TASK_NAME)

            figures = await peer_kit.enqueue_sequentially(enqueue)
        started = time.perf_counter()
        worker = peer_kit.start_worker([sys.executable, __file__, "worker"])
        try:
            figures.update(await peer_kit.drain(client, TOKEN, worker, started))
        finally:
            peer_kit.stop_worker(worker)
        return figures
    finally:
        await client.aclose()


async def read_roundtrip() -> dict[str, float]:
    client = aioredis.Redis.from_url(peer_kit.redis_url(DB))
    try:
        raw = await client.get(ROUNDTRIP_KEY)
        if raw is None:
            raise RuntimeError("the round-trip process reported nothing")
        figures: dict[str, float] = json.loads(raw)
        return figures
    finally:
        await client.aclose()


def main() -> None:
    me = [sys.executable, __file__]
    try:
        figures = asyncio.run(drive())
        rounder = peer_kit.start_worker([*me, "roundtrip"])
        deadline = time.monotonic() + 600
        while rounder.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        peer_kit.stop_worker(rounder)
        if rounder.returncode != 0:
            raise RuntimeError(f"the round-trip process exited with {rounder.returncode}")
        figures.update(asyncio.run(read_roundtrip()))
    finally:
        asyncio.run(peer_kit.clean(aioredis.Redis.from_url(peer_kit.redis_url(DB)), TOKEN))
    peer_kit.emit(
        "aio-fluid",
        {
            **figures,
            "version": peer_kit.package_version("aio-fluid"),
            "bulk_api": "none (TaskManager.queue, one LPUSH per run)",
            "wait_api": "consumer dispatcher event on the run's end state, in the consumer "
            "process (TaskManager.queue_and_wait polls every 10 ms)",
            "config": f"TaskConsumer max_concurrent_tasks={peer_kit.WORKER_CONCURRENCY}, "
            f"Redis pool {peer_kit.WORKER_CONCURRENCY + 10}",
        },
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    if sys.argv[1:] == ["worker"]:
        asyncio.run(work())
    elif sys.argv[1:] == ["roundtrip"]:
        asyncio.run(roundtrip())
    else:
        main()
