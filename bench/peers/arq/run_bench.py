"""arq (PyPI `arq`) on the bench workloads; run under .bench/arq/.

`python run_bench.py` drives the bench and prints one JSON line: it enqueues BENCH_RUNS jobs
one ArqRedis.enqueue_job call at a time with no worker running, then starts this same file as
`worker` (one arq Worker process, max_jobs = the bench worker concurrency), measures it
draining that queue, then runs the round trips (enqueue_job, then Job.result()).
arq is poll-based: the worker polls its queue (a sorted set) every `poll_delay` and
Job.result() polls the result key every `poll_delay`; both defaults are 0.5 s, here both are
BENCH_POLL_INTERVAL (1 ms).
Redis db 14; the queue name and every job id carry the bench token, and all keys are deleted.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import peer_kit
import redis.asyncio as aioredis
from arq import Worker, create_pool, func
from arq.connections import ArqRedis, RedisSettings

DB = 14
TOKEN = peer_kit.bench_token()
QUEUE = f"{TOKEN}:queue"
SETTINGS = RedisSettings(host=peer_kit.REDIS_HOST, port=peer_kit.REDIS_PORT, database=DB)


async def noop(ctx: dict[str, Any]) -> None:
    """Does nothing: measures the queue, not the task."""


async def on_startup(ctx: dict[str, Any]) -> None:
    counter = peer_kit.DoneCounter(ctx["redis"], TOKEN)
    ctx["bench_counter"] = counter
    counter.start()


async def after_job_end(ctx: dict[str, Any]) -> None:
    # arq: "run after job has ended and results have been recorded"
    ctx["bench_counter"].hit()


async def on_shutdown(ctx: dict[str, Any]) -> None:
    await ctx["bench_counter"].stop()


def work() -> None:
    worker = Worker(
        functions=[func(noop, name="noop")],
        queue_name=QUEUE,
        redis_settings=SETTINGS,
        max_jobs=peer_kit.WORKER_CONCURRENCY,
        poll_delay=peer_kit.POLL_INTERVAL,
        on_startup=on_startup,
        after_job_end=after_job_end,
        on_shutdown=on_shutdown,
        handle_signals=True,
    )
    worker.run()


async def drive() -> dict[str, float]:
    pool: ArqRedis = await create_pool(SETTINGS, default_queue_name=QUEUE)
    ids = itertools.count()
    try:

        async def enqueue() -> None:
            await pool.enqueue_job("noop", _job_id=f"{TOKEN}-{next(ids)}")

        async def round_trip() -> None:
            job = await pool.enqueue_job("noop", _job_id=f"{TOKEN}-{next(ids)}")
            assert job is not None
            await job.result(timeout=peer_kit.TIMEOUT, poll_delay=peer_kit.POLL_INTERVAL)

        worker = [sys.executable, __file__, "worker"]
        return await peer_kit.workload(pool, TOKEN, enqueue, worker, round_trip)
    finally:
        await pool.aclose()


def main() -> None:
    try:
        figures = asyncio.run(drive())
    finally:
        asyncio.run(peer_kit.clean(aioredis.Redis.from_url(peer_kit.redis_url(DB)), TOKEN))
    peer_kit.emit(
        "arq",
        {
            **figures,
            "version": peer_kit.package_version("arq"),
            "bulk_api": "none (ArqRedis.enqueue_job, one MULTI per job)",
            "wait_api": f"Job.result(poll_delay={peer_kit.POLL_INTERVAL})",
            "config": f"Worker max_jobs={peer_kit.WORKER_CONCURRENCY}, "
            f"poll_delay={peer_kit.POLL_INTERVAL} (default 0.5 s)",
        },
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    if sys.argv[1:] == ["worker"]:
        work()
    else:
        main()
