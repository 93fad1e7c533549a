"""SAQ (PyPI `saq`, Redis queue) on the bench workloads; run under .bench/saq/.

`python run_bench.py` drives the bench and prints one JSON line: it enqueues BENCH_RUNS jobs
one Queue.enqueue call at a time with no worker running, then starts this same file as
`worker` (one saq Worker process, concurrency = the bench worker concurrency), measures it
draining that queue (SAQ dequeues with a blocking BLMOVE), then runs the round trips.
The round trip is Queue.apply (enqueue, then poll the job's status) with poll_interval =
BENCH_POLL_INTERVAL (default 0.5 s). Job.refresh(until_complete=...) would
wait on pub/sub instead, but in saq 0.26.4 it can miss a fast job: the queue's pub/sub
multiplexer unsubscribes whenever no one listens and re-subscribes asynchronously on the next
wait, so a job that ends before the subscription is live is never notified and the wait runs
to its timeout (seen once in 500 round trips on this busy 2-core machine, 0 in 1,000 when idle).
Redis db 11; the queue is named after the bench token, so every key carries it; all are deleted.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import peer_kit
import redis.asyncio as aioredis
from saq import Queue, Worker
from saq.types import Context

DB = 11
TOKEN = peer_kit.bench_token()


def queue() -> Queue:
    return Queue.from_url(peer_kit.redis_url(DB), name=TOKEN)


async def noop(ctx: Context) -> None:
    """Does nothing: measures the queue, not the task."""


async def work() -> None:
    jobs = queue()
    client = aioredis.Redis.from_url(peer_kit.redis_url(DB))
    counter = peer_kit.DoneCounter(client, TOKEN)

    async def startup(ctx: Context) -> None:
        counter.start()

    async def shutdown(ctx: Context) -> None:
        await counter.stop()

    worker = Worker(
        jobs,
        functions=[("noop", noop)],
        concurrency=peer_kit.WORKER_CONCURRENCY,
        startup=startup,
        # saq runs after_process once the job is finished (its result stored).
        after_process=counter.ahit,
        shutdown=shutdown,
    )
    await jobs.connect()
    try:
        await worker.start()  # returns on SIGTERM
    finally:
        await client.aclose()


async def drive() -> dict[str, float]:
    jobs = queue()
    await jobs.connect()
    client = aioredis.Redis.from_url(peer_kit.redis_url(DB))
    try:

        async def enqueue() -> None:
            await jobs.enqueue("noop")

        async def round_trip() -> None:
            # Raises JobError if the job fails.
            await jobs.apply("noop", timeout=peer_kit.TIMEOUT, poll_interval=peer_kit.POLL_INTERVAL)

        worker = [sys.executable, __file__, "worker"]
        return await peer_kit.workload(client, TOKEN, enqueue, worker, round_trip)
    finally:
        await jobs.disconnect()
        await client.aclose()


def main() -> None:
    try:
        figures = asyncio.run(drive())
    finally:
        asyncio.run(peer_kit.clean(aioredis.Redis.from_url(peer_kit.redis_url(DB)), TOKEN))
    peer_kit.emit(
        "saq",
        {
            **figures,
            "version": peer_kit.package_version("saq"),
            "bulk_api": "none (Queue.map/batch enqueue one job per call)",
            "wait_api": f"Queue.apply(poll_interval={peer_kit.POLL_INTERVAL}) (Job.refresh "
            "until_complete is racy in saq 0.26.4, see run_bench.py)",
            "config": f"Worker concurrency={peer_kit.WORKER_CONCURRENCY} (default 10)",
        },
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    if sys.argv[1:] == ["worker"]:
        asyncio.run(work())
    else:
        main()
