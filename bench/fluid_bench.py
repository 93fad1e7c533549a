"""`make bench`: fluid's full gRPC path on this machine, with a local Redis.

client -> dispatcher (Redis broker) -> one io-worker process -> history, each service a
separate `fluid serve` process, on the peers' own workload (bench/peers/peer_kit.py):
BENCH_RUNS (default 5,000) no-op runs queued one call at a time from one coroutine with no
worker consuming, then drained by one io-worker (steady-state rate between 10% and 90% done),
then the same number queued in bulk (queue_many), then as concurrent queue() calls all
at once (which the client coalesces into QueueRuns), then BENCH_ROUND_TRIPS (default 300)
sequential queue_and_wait calls. Each round trip is split into hops on this process's clock:
QueueRun answered, the run's `running` and terminal snapshots seen on the dispatcher's Redis
change channels (a raw subscriber in a thread), and the watcher told. History ingest lag is the
time from the last run done to the dispatcher's outbox empty (everything handed to history).
BENCH_HISTORY=sqlite|postgresql picks history's database (default sqlite; postgresql makes a
fresh database on FLUID_BENCH_POSTGRES_URL, default the local server). BENCH_JSON=1 prints the
figures as one JSON line instead (read by bench/peers/compare.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import redis as redis_sync
import redis.asyncio as aioredis

from fluid.scheduler import Client

HERE = Path(__file__).parent
RUNS = int(os.environ.get("BENCH_RUNS", "5000"))
ROUND_TRIPS = int(os.environ.get("BENCH_ROUND_TRIPS", "300"))
REDIS_URL = os.environ.get("FLUID_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
HISTORY = os.environ.get("BENCH_HISTORY", "sqlite")
POSTGRES_URL = os.environ.get(
    "FLUID_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
DEADLINE = max(120.0, RUNS / 20)
HOPS = (
    "client -> QueueRun answered",
    "lease wake-up (running seen)",
    "execution + report applied",
    "watcher told",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User and system CPU the process used so far (steadier than wall time on a busy box)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    # The same percentile rule as bench/peers/peer_kit.py.
    return ordered[max(int(len(ordered) * share) - 1, 0)]


class ChangeClock:
    """When each run's `running` and terminal snapshots reach a raw Redis subscriber: the
    moments the dispatcher applied the lease and the report (its change channels)."""

    def __init__(self, namespace: str) -> None:
        self.seen: dict[tuple[str, str], float] = {}
        # redis-py's sync PubSub is untyped; a thread of its own keeps the timestamps off the
        # event loop whose latency is being measured. The client is kept: collecting it would
        # close the subscription's socket.
        self._redis = cast(Any, redis_sync.Redis.from_url(REDIS_URL))
        self._pubsub = self._redis.pubsub()
        self._pubsub.psubscribe(f"{{{namespace}}}:run:*:changes")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.1)
            if message is None or message["type"] != "pmessage":
                continue
            now = time.perf_counter()
            fields = json.loads(message["data"])
            key = (fields.get("id", ""), fields.get("state", ""))
            self.seen.setdefault(key, now)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pubsub.close()
        self._redis.close()


async def wait_registered(client: Client, worker: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if worker.poll() is not None:
            raise SystemExit(f"the io-worker exited with code {worker.returncode}")
        with contextlib.suppress(Exception):
            if any(task.name == "noop" and task.workers for task in await client.list_tasks()):
                return
        await asyncio.sleep(0.1)
    raise SystemExit("the io-worker did not register within 60 s")


async def until_finished(redis: aioredis.Redis, key: str, count: int) -> None:
    # Polls a counter the dispatcher keeps anyway: watching thousands of runs would be the load.
    deadline = time.monotonic() + DEADLINE
    while await redis.zcard(key) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {await redis.zcard(key)} of {count} runs done in time")
        await asyncio.sleep(0.005)


async def drain(redis: aioredis.Redis, key: str, base: int) -> tuple[float, float]:
    """Steady-state drain rate (runs/s between 10% and 90% done) and the total seconds."""
    started = time.perf_counter()
    low = high = None
    deadline = time.monotonic() + DEADLINE
    while True:
        done = await redis.zcard(key) - base
        now = time.perf_counter()
        if low is None and done >= RUNS * 0.1:
            low = (now, done)
        if high is None and done >= RUNS * 0.9:
            high = (now, done)
        if done >= RUNS:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"only {done} of {RUNS} runs drained in time")
        await asyncio.sleep(0.005)
    assert low is not None and high is not None
    if high[0] <= low[0]:
        raise SystemExit("10% and 90% done in one sample: raise BENCH_RUNS")
    return (high[1] - low[1]) / (high[0] - low[0]), time.perf_counter() - started


async def history_lag(redis: aioredis.Redis, outbox: str) -> float:
    started = time.perf_counter()
    deadline = time.monotonic() + DEADLINE
    while await redis.xlen(outbox):
        if time.monotonic() > deadline:
            raise SystemExit("history did not catch up in time")
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


async def measure(
    client: Client,
    redis: aioredis.Redis,
    namespace: str,
    start_worker: Iterator[subprocess.Popen[bytes]],
    dispatcher: int,
) -> dict[str, float]:
    figures: dict[str, float] = {}
    finished, outbox = f"{{{namespace}}}:finished", f"{{{namespace}}}:outbox"

    started, cpu = time.perf_counter(), cpu_seconds(dispatcher)
    for _ in range(RUNS):
        await client.queue_run("noop", {})
    figures["enqueue_single_per_s"] = RUNS / (time.perf_counter() - started)
    await history_lag(redis, outbox)  # the dispatcher's work for a queued run ends there
    figures["dispatcher_cpu_ms_per_enqueue"] = (cpu_seconds(dispatcher) - cpu) * 1000 / RUNS

    cpu = cpu_seconds(dispatcher)
    worker = next(start_worker)
    figures["drain_per_s"], figures["drain_total_s"] = await drain(redis, finished, 0)
    figures["dispatcher_cpu_ms_per_drained_run"] = (cpu_seconds(dispatcher) - cpu) * 1000 / RUNS
    figures["worker_cpu_ms_per_drained_run"] = cpu_seconds(worker.pid) * 1000 / RUNS
    figures["history_lag_s"] = await history_lag(redis, outbox)

    started = time.perf_counter()
    await client.queue_many("noop", ({} for _ in range(RUNS)))
    figures["enqueue_bulk_per_s"] = RUNS / (time.perf_counter() - started)
    await until_finished(redis, finished, 2 * RUNS)
    await history_lag(redis, outbox)

    # Every queue() call at once, as a web app under load makes them: the client coalesces.
    started = time.perf_counter()
    await asyncio.gather(*(client.queue_run("noop", {}) for _ in range(RUNS)))
    figures["enqueue_concurrent_per_s"] = RUNS / (time.perf_counter() - started)
    await until_finished(redis, finished, 3 * RUNS)
    await history_lag(redis, outbox)

    clock = ChangeClock(namespace)
    cpu = cpu_seconds(dispatcher)
    hops: list[list[float]] = [[] for _ in HOPS]
    latencies = []
    try:
        for _ in range(ROUND_TRIPS):
            if worker.poll() is not None:
                raise SystemExit(f"the io-worker exited with code {worker.returncode}")
            begin = time.perf_counter()
            run = await client.queue_run("noop", {})
            answered = time.perf_counter()
            done = await client.wait(run.id, timeout=30)
            told = time.perf_counter()
            latencies.append((told - begin) * 1000)
            running = clock.seen.get((run.id, "running"), answered)
            applied = clock.seen.get((run.id, done.state.value), running)
            for i, (a, b) in enumerate(
                ((begin, answered), (answered, running), (running, applied), (applied, told))
            ):
                hops[i].append(max(b - a, 0.0) * 1000)
    finally:
        clock.close()
    figures["dispatcher_cpu_ms_per_round_trip"] = (
        (cpu_seconds(dispatcher) - cpu) * 1000 / ROUND_TRIPS
    )
    figures["p50_ms"] = statistics.median(latencies)
    figures["p99_ms"] = percentile(latencies, 0.99)
    for name, values in zip(HOPS, hops, strict=True):
        figures[f"hop {name} p50_ms"] = statistics.median(values)
        figures[f"hop {name} p99_ms"] = percentile(values, 0.99)
    return figures


@contextlib.contextmanager
def history_database(workdir: Path) -> Iterator[str]:
    if HISTORY == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'history.db'}"
        return
    if HISTORY != "postgresql":
        raise SystemExit(f"BENCH_HISTORY={HISTORY!r}: sqlite or postgresql")
    import psycopg

    name = f"fluid_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def serve(name: str, port: int, env: dict[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    with (workdir / f"{name}.log").open("a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "fluid_cli", "serve", name, "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wipe(namespace: str) -> None:
    """Delete the run's keys, once the services that write them have stopped."""
    client = redis_sync.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{{{namespace}}}:*", count=1000):
        client.delete(key)
    client.close()


async def run_bench(
    env: dict[str, str], workdir: Path, processes: dict[str, subprocess.Popen[bytes]]
) -> dict[str, float]:
    redis = aioredis.Redis.from_url(REDIS_URL)
    port = int(env["FLUID_WORKER_PORT"])

    def workers() -> Iterator[subprocess.Popen[bytes]]:
        while True:
            processes["io-worker"] = serve("io-worker", port, env, workdir)
            yield processes["io-worker"]

    start_worker = workers()
    try:
        async with Client(env["FLUID_DISPATCHER_ADDRESS"]) as client:
            # A first worker registers the task, then stops: the runs queue with none consuming.
            await wait_registered(client, next(start_worker))
            stop(processes["io-worker"])
            figures = await measure(
                client,
                redis,
                env["FLUID_BROKER_NAMESPACE"],
                start_worker,
                processes["dispatcher"].pid,
            )
            figures["dispatcher_rss_mb"] = rss_mb(processes["dispatcher"].pid)
        return figures
    finally:
        await redis.aclose()


def main() -> None:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    ports = {name: free_port() for name in ("history", "dispatcher", "io-worker")}
    workdir = Path(tempfile.mkdtemp(prefix="fluid-bench-"))
    with history_database(workdir) as database_url:
        env = {
            **os.environ,
            "PYTHONPATH": str(HERE),
            "FLUID_BROKER_URL": REDIS_URL,
            "FLUID_BROKER_NAMESPACE": namespace,
            "FLUID_DATABASE_URL": database_url,
            "FLUID_DISPATCHER_ADDRESS": f"127.0.0.1:{ports['dispatcher']}",
            "FLUID_HISTORY_ADDRESS": f"127.0.0.1:{ports['history']}",
            "FLUID_WORKER_PORT": str(ports["io-worker"]),
            "FLUID_TASK_MODULES": "bench_tasks",
            "FLUID_LOG_LEVEL": "WARNING",
        }
        processes = {
            name: serve(name, ports[name], env, workdir) for name in ("history", "dispatcher")
        }
        try:
            figures = asyncio.run(run_bench(env, workdir, processes))
        finally:
            for process in processes.values():
                stop(process)
            wipe(namespace)
    if os.environ.get("BENCH_JSON") == "1":  # one JSON line, for bench/peers/compare.py
        print(
            json.dumps(
                {
                    "system": f"fluid ({HISTORY})",
                    "runs": RUNS,
                    "round_trips": ROUND_TRIPS,
                    **figures,
                }
            )
        )
        return
    print(f"fluid: Redis broker, 1 io-worker process, history on {HISTORY}, {RUNS} no-op runs")
    print(f"  enqueue, one call at a time  {figures['enqueue_single_per_s']:8.0f} calls/s")
    print(f"  enqueue, bulk (queue_many)   {figures['enqueue_bulk_per_s']:8.0f} runs/s")
    print(f"  enqueue, all calls at once   {figures['enqueue_concurrent_per_s']:8.0f} calls/s")
    print(f"  drain by one io-worker       {figures['drain_per_s']:8.0f} runs/s (10%-90%)")
    print(f"  history ingest lag           {figures['history_lag_s']:8.2f} s after the drain")
    print(f"  round trip p50 / p99         {figures['p50_ms']:6.2f} / {figures['p99_ms']:.2f} ms")
    for name in HOPS:
        p50, p99 = figures[f"hop {name} p50_ms"], figures[f"hop {name} p99_ms"]
        print(f"    {name:32} {p50:6.2f} / {p99:.2f} ms")
    print(
        f"  dispatcher CPU per run       {figures['dispatcher_cpu_ms_per_enqueue']:8.2f} ms queued "
        f"one call at a time, {figures['dispatcher_cpu_ms_per_drained_run']:.2f} ms drained, "
        f"{figures['dispatcher_cpu_ms_per_round_trip']:.2f} ms per round trip"
    )
    print(
        f"  io-worker CPU per run        {figures['worker_cpu_ms_per_drained_run']:8.2f} ms "
        "drained"
        " (its start-up included)"
    )
    print(f"  dispatcher RSS               {figures['dispatcher_rss_mb']:8.1f} MB")


if __name__ == "__main__":
    main()
