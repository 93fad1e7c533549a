"""`make bench`: fluid's full gRPC path on this machine, with a local Redis.

client -> dispatcher (Redis broker) -> one io-worker process -> history (SQLite), each
service a separate `fluid serve` process. Prints the enqueue rate (one run per call and
bulk), the no-op throughput for BENCH_RUNS runs (default 10,000), the queue-to-done round
trip p50/p99 over 500 sequential queue_and_wait calls, and the dispatcher's memory.
BENCH_JSON=1 prints the figures as one JSON line instead (read by bench/peers/compare.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis as redis_sync
import redis.asyncio as aioredis

from fluid.scheduler import Client

HERE = Path(__file__).parent
RUNS = int(os.environ.get("BENCH_RUNS", "10000"))
ROUND_TRIPS = int(os.environ.get("BENCH_ROUND_TRIPS", "500"))
REDIS_URL = os.environ.get("FLUID_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SINGLE_CALLS = 2000
CONCURRENCY = 32


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


async def wait_ready(client: Client) -> None:
    for _ in range(300):
        try:
            if any(task.name == "noop" and task.workers for task in await client.list_tasks()):
                return
        except Exception:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("the services did not come up")


async def until_finished(redis: aioredis.Redis, key: str, count: int) -> None:
    # Polls a counter the dispatcher keeps anyway: watching 10,000 runs would be the load.
    while await redis.zcard(key) < count:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


async def measure(client: Client, redis: aioredis.Redis, finished_key: str) -> dict[str, float]:
    figures: dict[str, float] = {}

    calls = iter(range(SINGLE_CALLS))

    async def one_by_one() -> None:
        for _ in calls:
            await client.queue_run("noop", {})

    started = time.perf_counter()
    await asyncio.gather(*(one_by_one() for _ in range(CONCURRENCY)))
    figures["enqueue_single_per_s"] = SINGLE_CALLS / (time.perf_counter() - started)
    await until_finished(redis, finished_key, SINGLE_CALLS)

    base = await redis.zcard(finished_key)
    started = time.perf_counter()
    await client.queue_many("noop", ({} for _ in range(RUNS)))
    figures["enqueue_bulk_per_s"] = RUNS / (time.perf_counter() - started)
    await until_finished(redis, finished_key, base + RUNS)
    figures["throughput_per_s"] = RUNS / (time.perf_counter() - started)

    # History still ingests the throughput phase's states: let it catch up, so the round
    # trips measure the queue rather than a machine busy with the previous workload.
    outbox = finished_key.replace(":finished", ":outbox")
    for _ in range(3000):
        if not await redis.xlen(outbox):
            break
        await asyncio.sleep(0.01)

    latencies = []
    for _ in range(ROUND_TRIPS):
        begin = time.perf_counter()
        await client.queue_and_wait("noop", timeout=30)
        latencies.append((time.perf_counter() - begin) * 1000)
    latencies.sort()
    figures["p50_ms"] = statistics.median(latencies)
    figures["p99_ms"] = latencies[max(int(len(latencies) * 0.99) - 1, 0)]
    return figures


async def run_bench(dispatcher: str, namespace: str, dispatcher_pid: int) -> dict[str, float]:
    redis = aioredis.Redis.from_url(REDIS_URL)
    try:
        async with Client(dispatcher) as client:
            await wait_ready(client)
            figures = await measure(client, redis, f"{{{namespace}}}:finished")
            figures["dispatcher_rss_mb"] = rss_mb(dispatcher_pid)
        return figures
    finally:
        await redis.aclose()


def wipe(namespace: str) -> None:
    """Delete the run's keys, once the services that write them have stopped."""
    client = redis_sync.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{{{namespace}}}:*", count=1000):
        client.delete(key)
    client.close()


def main() -> None:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    ports = {name: free_port() for name in ("history", "dispatcher", "io-worker")}
    workdir = Path(tempfile.mkdtemp(prefix="fluid-bench-"))
    env = {
        **os.environ,
        "PYTHONPATH": str(HERE),
        "FLUID_BROKER_URL": REDIS_URL,
        "FLUID_BROKER_NAMESPACE": namespace,
        "FLUID_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'history.db'}",
        "FLUID_DISPATCHER_ADDRESS": f"127.0.0.1:{ports['dispatcher']}",
        "FLUID_HISTORY_ADDRESS": f"127.0.0.1:{ports['history']}",
        "FLUID_TASK_MODULES": "bench_tasks",
        "FLUID_LOG_LEVEL": "WARNING",
    }
    processes = {}
    for name, port in ports.items():
        with (workdir / f"{name}.log").open("w") as log:
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", "fluid_cli", "serve", name, "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    try:
        figures = asyncio.run(
            run_bench(env["FLUID_DISPATCHER_ADDRESS"], namespace, processes["dispatcher"].pid)
        )
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=30)
        wipe(namespace)
    if os.environ.get("BENCH_JSON") == "1":  # one JSON line, for bench/peers/compare.py
        print(json.dumps({"system": "fluid", "runs": RUNS, "round_trips": ROUND_TRIPS, **figures}))
        return
    print(f"fluid: Redis broker, 1 io-worker process, history on SQLite, {RUNS} no-op runs")
    print(f"  enqueue, one run per call  {figures['enqueue_single_per_s']:8.0f} runs/s")
    print(f"  enqueue, bulk (queue_many) {figures['enqueue_bulk_per_s']:8.0f} runs/s")
    print(f"  no-op throughput           {figures['throughput_per_s']:8.0f} runs/s")
    print(f"  round trip p50 / p99       {figures['p50_ms']:6.2f} / {figures['p99_ms']:.2f} ms")
    print(f"  dispatcher RSS             {figures['dispatcher_rss_mb']:8.1f} MB")


if __name__ == "__main__":
    main()
