"""dramatiq (PyPI `dramatiq[redis]`) on the bench workloads; run under .bench/dramatiq/.

`python run_bench.py` drives the bench and prints one JSON line: it enqueues BENCH_RUNS
messages one `actor.send()` call at a time with no worker running (dramatiq's client API is
synchronous: each send is one Lua script call to Redis), then starts one worker with
dramatiq's own CLI, `dramatiq run_bench --processes 1 --threads N` (a supervisor process and
ONE worker process of N worker threads, N = the bench worker concurrency; dramatiq's default
is 8), importing this file as the broker module, measures it draining that queue, then runs the
round trips: `actor.send()`, then `message.get_result(block=True, timeout=...)` from the
Results middleware with its Redis backend (a BRPOPLPUSH on the result key: no polling).
The actor is a no-op sync function, dramatiq's default kind.
dramatiq's Redis consumer polls its queue: when a fetch finds nothing it sleeps 5-10 ms,
doubling on each further miss up to the worker timeout (1 s by default), so an idle worker
picks up a round trip's message after up to that back-off. This is dramatiq's default and is
kept (its minimum of 5 ms is not configurable; lowering the worker timeout would also wake
every worker thread that often).
Done is counted by an after_process_message middleware placed so that it runs after the
Results middleware has stored the result, and published by peer_kit.ThreadDoneCounter (the
worker runs tasks on threads, not an event loop).
Redis db 15; the broker's namespace and the results' key prefix carry the bench token, and
every key is deleted at the end.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import dramatiq
import peer_kit
import redis
import redis.asyncio as aioredis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

DB = 15
TOKEN = peer_kit.bench_token()
URL = peer_kit.redis_url(DB)


class CountDone(Middleware):
    """Counts every processed message in the worker process and publishes the count."""

    def __init__(self) -> None:
        self.counter: peer_kit.ThreadDoneCounter | None = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Before the worker threads start, so the first publish (0) can only precede the
        # first completions; none is missed, as hits before the publisher runs still count.
        self.counter = peer_kit.ThreadDoneCounter(redis.Redis.from_url(URL), TOKEN)
        self.counter.start()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if self.counter is not None:
            self.counter.hit()

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        if self.counter is not None:
            self.counter.hit()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.counter is not None:
            self.counter.stop()
            self.counter.client.close()


broker = RedisBroker(url=URL, namespace=f"dramatiq-{TOKEN}")
# after_* hooks run in reverse order of the middleware list: CountDone goes before Results, so
# its after_process_message runs once the result is stored.
broker.add_middleware(CountDone())
# use_namespace_prefix_keys: plain `<namespace>:...` result keys (the default hashes them, and
# the token would not be in the key).
results = RedisBackend(url=URL, namespace=f"{TOKEN}-results", use_namespace_prefix_keys=True)
broker.add_middleware(Results(backend=results))
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop", store_results=True)
def noop() -> None:
    """Does nothing: measures the queue, not the task."""


def worker_command() -> list[str]:
    return [
        *(sys.executable, "-m", "dramatiq", "run_bench"),
        *("--path", str(peer_kit.here(__file__)), "--processes", "1"),
        *("--threads", str(peer_kit.WORKER_CONCURRENCY)),
    ]


async def drive() -> dict[str, float]:
    client = aioredis.Redis.from_url(URL)
    try:

        async def enqueue() -> None:
            noop.send()

        async def round_trip() -> None:
            # Blocks this (only) thread; the timeout bounds it. Raises if the task failed.
            noop.send().get_result(block=True, timeout=int(peer_kit.TIMEOUT * 1000))

        return await peer_kit.workload(client, TOKEN, enqueue, worker_command(), round_trip)
    finally:
        await client.aclose()


def main() -> None:
    try:
        figures = asyncio.run(drive())
    finally:
        broker.close()
        asyncio.run(peer_kit.clean(aioredis.Redis.from_url(URL), TOKEN))
    peer_kit.emit(
        "dramatiq",
        {
            **figures,
            "version": peer_kit.package_version("dramatiq"),
            "bulk_api": "none (actor.send / group.run enqueue one message per call)",
            "wait_api": "Message.get_result(block=True) (Results middleware, RedisBackend: "
            "BRPOPLPUSH)",
            "config": f"RedisBroker, CLI --processes 1 --threads {peer_kit.WORKER_CONCURRENCY} "
            "(default 8), default middleware + Results, consumer poll back-off 5 ms to "
            "worker timeout 1 s (defaults)",
        },
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    main()
