"""What every peer driver (bench/peers/<peer>/run_bench.py) shares.

Each driver runs under its peer's own virtualenv (.bench/<peer>/), so this module uses only
the standard library and redis-py, which every peer depends on. The workloads mirror
bench/fluid_bench.py: SINGLE_CALLS one-per-call enqueues from CONCURRENCY coroutines, then
RUNS no-op tasks enqueued while ONE worker process consumes them (throughput = RUNS / time
from the first enqueue to the last task done), then ROUND_TRIPS sequential enqueue-and-wait
calls through the peer's own result/wait API.

"Done" is counted inside the worker process by the peer's own after-the-task hook and
published to Redis every few milliseconds by a background coroutine, so the driver never
polls thousands of job keys (that polling would be the load).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

RUNS = int(os.environ.get("BENCH_RUNS", "10000"))
ROUND_TRIPS = int(os.environ.get("BENCH_ROUND_TRIPS", "500"))
# The same one-per-call workload as bench/fluid_bench.py.
SINGLE_CALLS = int(os.environ.get("BENCH_SINGLE_CALLS", "2000"))
CONCURRENCY = 32
# Task concurrency of the one worker process: fluid's io-worker default is 100.
WORKER_CONCURRENCY = int(os.environ.get("BENCH_WORKER_CONCURRENCY", "100"))
# Where a peer's wait API or worker polls, it polls this often (their defaults are 0.2-0.5 s,
# which would make the round trip measure the poll period, not the queue).
POLL_INTERVAL = float(os.environ.get("BENCH_POLL_INTERVAL", "0.001"))
REDIS_HOST = os.environ.get("BENCH_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "6379"))
TIMEOUT = 30.0
PUBLISH_EVERY = 0.005


def redis_url(db: int) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def bench_token() -> str:
    """The string every Redis key of one bench run contains (shared by driver and worker)."""
    token = os.environ.get("BENCH_TOKEN")
    if not token:
        token = f"bench_{uuid.uuid4().hex[:10]}"
        os.environ["BENCH_TOKEN"] = token
    return token


def done_key(token: str) -> str:
    return f"{token}:done"


class DoneCounter:
    """Counts finished tasks in the worker and publishes the count to Redis."""

    def __init__(self, client: aioredis.Redis, token: str) -> None:
        self.client = client
        self.key = done_key(token)
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    def hit(self, *_: Any) -> None:
        self.count += 1

    async def ahit(self, *_: Any) -> None:
        self.count += 1

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._publish())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _publish(self) -> None:
        published = -1
        while True:
            if self.count != published:
                published = self.count
                await self.client.set(self.key, published)
            await asyncio.sleep(PUBLISH_EVERY)


async def finished(client: aioredis.Redis, token: str) -> int:
    value = await client.get(done_key(token))
    return int(value) if value is not None else -1


async def wait_worker_ready(
    client: aioredis.Redis, token: str, worker: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 60
    while await finished(client, token) < 0:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with code {worker.returncode} at startup")
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not start within 60 s")
        await asyncio.sleep(0.05)


async def until_finished(
    client: aioredis.Redis, token: str, count: int, worker: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + max(120.0, RUNS / 50)
    while await finished(client, token) < count:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with code {worker.returncode}")
        if time.monotonic() > deadline:
            done = await finished(client, token)
            raise RuntimeError(f"only {done} of {count} tasks done in time")
        await asyncio.sleep(0.01)


async def enqueue_concurrently(enqueue: Callable[[], Awaitable[object]], calls: int) -> float:
    """Enqueues `calls` tasks from CONCURRENCY coroutines; returns the elapsed seconds."""
    pending = iter(range(calls))

    async def one_by_one() -> None:
        for _ in pending:
            await enqueue()

    started = time.perf_counter()
    await asyncio.gather(*(one_by_one() for _ in range(CONCURRENCY)))
    return time.perf_counter() - started


async def enqueue_and_throughput(
    client: aioredis.Redis,
    token: str,
    worker: subprocess.Popen[bytes],
    enqueue: Callable[[], Awaitable[object]],
) -> dict[str, float]:
    """Workloads 1 and 2, with the worker consuming; enqueue one task per call."""
    figures: dict[str, float] = {}
    elapsed = await enqueue_concurrently(enqueue, SINGLE_CALLS)
    figures["enqueue_single_per_s"] = SINGLE_CALLS / elapsed
    await until_finished(client, token, SINGLE_CALLS, worker)

    base = await finished(client, token)
    started = time.perf_counter()
    elapsed = await enqueue_concurrently(enqueue, RUNS)
    figures["enqueue_runs_per_s"] = RUNS / elapsed
    await until_finished(client, token, base + RUNS, worker)
    figures["throughput_per_s"] = RUNS / (time.perf_counter() - started)
    return figures


async def round_trips(call: Callable[[], Awaitable[object]]) -> dict[str, float]:
    """Workload 3: ROUND_TRIPS sequential enqueue-and-wait calls."""
    latencies = []
    for _ in range(ROUND_TRIPS):
        begin = time.perf_counter()
        await asyncio.wait_for(call(), TIMEOUT)
        latencies.append((time.perf_counter() - begin) * 1000)
    return latency_figures(latencies)


def latency_figures(latencies: Sequence[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": statistics.median(ordered),
        # Same percentile rule as bench/fluid_bench.py.
        "p99_ms": ordered[max(int(len(ordered) * 0.99) - 1, 0)],
    }


def start_worker(
    args: Sequence[str], *, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Starts the peer's worker; its output goes to stderr so stdout stays one JSON line."""
    return subprocess.Popen(
        list(args),
        env={**os.environ, **(env or {})},
        stdout=sys.stderr,
        stderr=sys.stderr,
        start_new_session=True,
    )


def stop_worker(worker: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM (the peers' own graceful stop), then SIGKILL of the worker's process group."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.wait(timeout=5)


async def clean_keys(client: aioredis.Redis, *patterns: str) -> int:
    removed = 0
    for pattern in patterns:
        batch: list[Any] = []
        async for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                removed += await client.delete(*batch)
                batch = []
        if batch:
            removed += await client.delete(*batch)
    return removed


def package_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def emit(system: str, figures: dict[str, Any]) -> None:
    """Prints the one JSON line compare.py reads."""
    line = {
        "system": system,
        "runs": RUNS,
        "round_trips": ROUND_TRIPS,
        "single_calls": SINGLE_CALLS,
        "worker_concurrency": WORKER_CONCURRENCY,
        "python": sys.version.split()[0],
        **figures,
    }
    print(json.dumps(line), flush=True)


def here(file: str) -> Path:
    return Path(file).resolve().parent
