"""taskiq + taskiq-redis on the bench workloads; run under .bench/taskiq/.

`python run_bench.py [list|stream]` drives the bench and prints one JSON line: it enqueues
BENCH_RUNS tasks one `.kiq()` call at a time with no worker running, then starts one worker
with taskiq's own CLI, `taskiq worker run_bench:broker --workers 1` (a supervisor process and
ONE worker process; --max-async-tasks = the bench worker concurrency, which is also taskiq's
default of 100), importing this file as the broker module, measures it draining that queue,
then runs the round trips.
`list` is taskiq-redis's ListQueueBroker (LPUSH/BRPOP, no acknowledgement), `stream` its
RedisStreamBroker (consumer group, acknowledged once the result is saved; the driver's
broker.startup() creates the group before the first message, so the late worker sees them
all). Results go to RedisAsyncResultBackend; the round trip waits with
AsyncTaskiqTask.wait_result(check_interval=BENCH_POLL_INTERVAL) (the default check_interval
is 0.2 s).
Redis db 12 (list) or 13 (stream); every key carries the bench token and is deleted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import peer_kit
import redis.asyncio as aioredis
from taskiq import AsyncBroker, TaskiqEvents, TaskiqMessage, TaskiqMiddleware, TaskiqResult
from taskiq.state import TaskiqState
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend, RedisStreamBroker

if __name__ == "__main__" and sys.argv[1:]:
    os.environ["BENCH_TASKIQ_BROKER"] = sys.argv[1]
KIND = os.environ.get("BENCH_TASKIQ_BROKER", "list")
DB = {"list": 12, "stream": 13}[KIND]
TOKEN = peer_kit.bench_token()
URL = peer_kit.redis_url(DB)


def make_broker() -> AsyncBroker:
    if KIND == "stream":
        base: AsyncBroker = RedisStreamBroker(URL, queue_name=TOKEN, consumer_group_name=TOKEN)
    else:
        base = ListQueueBroker(URL, queue_name=TOKEN)
    return base.with_result_backend(RedisAsyncResultBackend(URL, prefix_str=TOKEN))


broker = make_broker()
COUNTER: peer_kit.DoneCounter | None = None


class CountDone(TaskiqMiddleware):
    """Counts a task once its result is saved (taskiq's post_save hook)."""

    async def post_save(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        if COUNTER is not None:
            COUNTER.hit()


broker.add_middlewares(CountDone())


@broker.on_event(TaskiqEvents.WORKER_STARTUP)
async def worker_startup(state: TaskiqState) -> None:
    global COUNTER
    COUNTER = peer_kit.DoneCounter(aioredis.Redis.from_url(URL), TOKEN)
    COUNTER.start()


@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
async def worker_shutdown(state: TaskiqState) -> None:
    if COUNTER is not None:
        await COUNTER.stop()
        await COUNTER.client.aclose()


@broker.task(task_name="noop")
async def noop() -> None:
    """Does nothing: measures the queue, not the task."""


def worker_command() -> list[str]:
    return [
        *(sys.executable, "-m", "taskiq", "worker", "run_bench:broker"),
        *("--app-dir", str(peer_kit.here(__file__)), "--workers", "1", "--log-level", "ERROR"),
        *("--max-async-tasks", str(peer_kit.WORKER_CONCURRENCY)),
    ]


async def drive() -> dict[str, float]:
    await broker.startup()  # declares the stream's consumer group before anything is sent
    client = aioredis.Redis.from_url(URL)
    try:

        async def enqueue() -> None:
            await noop.kiq()

        async def round_trip() -> None:
            sent = await noop.kiq()
            result = await sent.wait_result(
                check_interval=peer_kit.POLL_INTERVAL, timeout=peer_kit.TIMEOUT
            )
            if result.is_err:
                raise RuntimeError(f"task failed: {result.error}")

        return await peer_kit.workload(
            client,
            TOKEN,
            enqueue,
            worker_command(),
            round_trip,
            worker_env={"BENCH_TASKIQ_BROKER": KIND},
        )
    finally:
        await broker.shutdown()
        await client.aclose()


def main() -> None:
    try:
        figures = asyncio.run(drive())
    finally:
        asyncio.run(peer_kit.clean(aioredis.Redis.from_url(URL), TOKEN))
    broker_class = "RedisStreamBroker" if KIND == "stream" else "ListQueueBroker"
    peer_kit.emit(
        f"taskiq ({KIND})",
        {
            **figures,
            "version": f"taskiq {peer_kit.package_version('taskiq')}, "
            f"taskiq-redis {peer_kit.package_version('taskiq-redis')}",
            "bulk_api": "none (AsyncTaskiqDecoratedTask.kiq, one message per call)",
            "wait_api": f"wait_result(check_interval={peer_kit.POLL_INTERVAL})",
            "config": f"{broker_class}, RedisAsyncResultBackend, --workers 1 "
            f"--max-async-tasks {peer_kit.WORKER_CONCURRENCY}",
        },
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    main()
