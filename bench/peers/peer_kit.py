"""What every peer driver (bench/peers/<peer>/run_bench.py) shares.

Each driver runs under its peer's own virtualenv (.bench/<peer>/), so this module uses only
the standard library and redis-py, which every peer depends on. The workloads are the peers'
own, measured the way their users run them:

1. Sequential single enqueue: RUNS no-op tasks enqueued one call at a time from one coroutine
   (no concurrency) while no worker runs yet: `enqueue_single_per_s` = RUNS / elapsed.
2. Drain: only then ONE worker process is started and empties that full queue. The driver
   samples the done count every SAMPLE_EVERY seconds; `drain_per_s` is the steady-state rate
   between the first sample at or above 10% of RUNS and the first at or above 90% (so the
   worker's start-up and its last stragglers do not count); `drain_total_s`, from the worker's
   start to the last task done, is reported for information.
3. Round trip: ROUND_TRIPS sequential enqueue-and-wait calls through the peer's own
   result/wait API, on the worker that drained the queue, now idle (aio-fluid, which has no
   cross-process wait, in a consumer process of its own): `p50_ms`, `p99_ms`.

"Done" is counted inside the worker process by the peer's own after-the-task hook and
published to Redis every PUBLISH_EVERY seconds by a background coroutine (DoneCounter) or,
for thread-based workers, a background thread (ThreadDoneCounter), so the driver never polls
thousands of job keys (that polling would be the load). A worker publishes 0 as soon as its
counter starts: that is how the driver knows the worker is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

RUNS = int(os.environ.get("BENCH_RUNS", "5000"))
ROUND_TRIPS = int(os.environ.get("BENCH_ROUND_TRIPS", "300"))
# Task concurrency of the one worker process: fluid's io-worker default is 100.
WORKER_CONCURRENCY = int(os.environ.get("BENCH_WORKER_CONCURRENCY", "100"))
# Where a peer's wait API or worker polls, it polls this often (their defaults are 0.2-0.5 s,
# which would make the round trip measure the poll period, not the queue).
POLL_INTERVAL = float(os.environ.get("BENCH_POLL_INTERVAL", "0.001"))
REDIS_HOST = os.environ.get("BENCH_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "6379"))
TIMEOUT = 30.0  # one round trip
STARTUP_TIMEOUT = 60.0  # a worker process, from its start to its counter's first publish
# Enqueuing RUNS tasks, or draining them once the worker is up.
WORKLOAD_TIMEOUT = max(120.0, RUNS / 50)
PUBLISH_EVERY = 0.005  # the worker's counter publishes this often (when the count changed)
SAMPLE_EVERY = 0.005  # the driver samples the published count this often during the drain
DRAIN_FROM, DRAIN_TO = 0.1, 0.9  # the steady-state window of the drain, fractions of RUNS


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
    """Counts finished tasks in an asyncio worker and publishes the count to Redis."""

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


class ThreadDoneCounter:
    """DoneCounter for thread-based workers: hit() from any thread, a daemon thread publishes."""

    def __init__(self, client: redis.Redis, token: str) -> None:
        self.client = client
        self.key = done_key(token)
        self.count = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def hit(self, *_: Any, **__: Any) -> None:
        with self._lock:  # `+= 1` is not atomic across threads
            self.count += 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._publish, name="bench-done", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _publish(self) -> None:
        published = -1
        while not self._stopping.is_set():
            count = self.count
            if count != published:
                self.client.set(self.key, count)
                published = count
            self._stopping.wait(PUBLISH_EVERY)


async def finished(client: aioredis.Redis, token: str) -> int:
    """The worker's published done count; -1 while its counter has not started."""
    value = await client.get(done_key(token))
    return int(value) if value is not None else -1


async def enqueue_sequentially(enqueue: Callable[[], Awaitable[object]]) -> dict[str, float]:
    """Workload 1: RUNS enqueues, one call at a time from this one coroutine.

    `enqueue` may also be a coroutine around a peer's synchronous call (dramatiq): the
    deadline is then checked between calls, as asyncio cannot interrupt one.
    """
    deadline = time.perf_counter() + WORKLOAD_TIMEOUT
    async with asyncio.timeout(WORKLOAD_TIMEOUT):
        started = time.perf_counter()
        for done in range(RUNS):
            await enqueue()
            if time.perf_counter() > deadline:
                raise RuntimeError(f"only {done + 1} of {RUNS} enqueued in time")
        elapsed = time.perf_counter() - started
    return {"enqueue_single_per_s": RUNS / elapsed}


async def drain(
    client: aioredis.Redis, token: str, worker: subprocess.Popen[bytes], started: float
) -> dict[str, float]:
    """Workload 2: the worker, started at `started` (time.perf_counter()), empties the queue.

    The driver samples the published done count every SAMPLE_EVERY seconds. The worker's
    first publish (its readiness) may already count finished tasks: only the DRAIN_FROM to
    DRAIN_TO window goes into `drain_per_s`.
    """
    low, high = math.ceil(RUNS * DRAIN_FROM), math.ceil(RUNS * DRAIN_TO)
    first: tuple[float, int] | None = None  # the first sample >= low
    last: tuple[float, int] | None = None  # the first sample >= high
    ready_by = started + STARTUP_TIMEOUT
    deadline: float | None = None  # set once the worker is up
    while True:
        count = await finished(client, token)
        now = time.perf_counter()
        if count >= 0 and deadline is None:
            deadline = now + WORKLOAD_TIMEOUT
        if first is None and count >= low:
            first = (now, count)
        if last is None and count >= high:
            last = (now, count)
        if count >= RUNS:
            break
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with code {worker.returncode} ({count} done)")
        if deadline is None and now > ready_by:
            raise RuntimeError(f"the worker did not start within {STARTUP_TIMEOUT:.0f} s")
        if deadline is not None and now > deadline:
            raise RuntimeError(f"only {count} of {RUNS} tasks done in time")
        await asyncio.sleep(SAMPLE_EVERY)
    assert first is not None and last is not None
    if last[0] <= first[0]:
        raise RuntimeError(
            f"the drain went from under {DRAIN_FROM:.0%} to {DRAIN_TO:.0%} of {RUNS} runs "
            f"within one {SAMPLE_EVERY * 1000:.0f} ms sample: raise BENCH_RUNS"
        )
    return {
        "drain_per_s": (last[1] - first[1]) / (last[0] - first[0]),
        "drain_total_s": now - started,
    }


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


async def workload(
    client: aioredis.Redis,
    token: str,
    enqueue: Callable[[], Awaitable[object]],
    worker_command: Sequence[str],
    round_trip: Callable[[], Awaitable[object]] | None,
    *,
    worker_env: dict[str, str] | None = None,
) -> dict[str, float]:
    """The workloads in order: RUNS sequential enqueues, their drain by a worker started only
    then, and (unless None: aio-fluid waits in a process of its own) ROUND_TRIPS round trips
    on that worker, stopped at the end whatever happened."""
    figures = await enqueue_sequentially(enqueue)
    started = time.perf_counter()
    worker = start_worker(worker_command, env=worker_env)
    try:
        figures.update(await drain(client, token, worker, started))
        if round_trip is not None:
            figures.update(await round_trips(round_trip))
    finally:
        stop_worker(worker)
    return figures


async def clean(client: aioredis.Redis, token: str) -> None:
    """Delete every key of this bench run (``token`` in its name), then close ``client``."""
    try:
        await clean_keys(client, f"*{token}*")
    finally:
        await client.aclose()


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
        "worker_concurrency": WORKER_CONCURRENCY,
        "python": sys.version.split()[0],
        **figures,
    }
    print(json.dumps(line), flush=True)


def here(file: str) -> Path:
    return Path(file).resolve().parent
