"""`make bench`: fluid's full gRPC path on this machine, with a local Redis.

client -> dispatcher (Redis broker) -> one io-worker process -> history (SQLite), each
service a separate `fluid serve` process. Prints the enqueue rate, the no-op throughput
for BENCH_RUNS runs (default 10,000) and the queue-to-done round trip p50/p99 over 500
sequential queue_and_wait calls.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from fluid.scheduler import Client

HERE = Path(__file__).parent
RUNS = int(os.environ.get("BENCH_RUNS", "10000"))
ROUND_TRIPS = int(os.environ.get("BENCH_ROUND_TRIPS", "500"))
REDIS_URL = os.environ.get("FLUID_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ENQUEUE_CONCURRENCY = 64


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


async def wait_serving(client: Client) -> None:
    for _ in range(300):
        try:
            if any(task.name == "noop" and task.workers for task in await client.list_tasks()):
                return
        except Exception:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("the services did not come up")


async def measure(client: Client, finished_key: str, redis: aioredis.Redis) -> dict[str, float]:
    async def finished() -> int:
        return int(await redis.zcard(finished_key))

    base = await finished()
    started = time.perf_counter()
    pending = iter(range(RUNS))

    async def producer() -> None:
        for _ in pending:
            await client.queue_run("noop", {})

    await asyncio.gather(*(producer() for _ in range(ENQUEUE_CONCURRENCY)))
    enqueued = time.perf_counter()
    while await finished() - base < RUNS:
        await asyncio.sleep(0.02)
    done = time.perf_counter()

    latencies = []
    for _ in range(ROUND_TRIPS):
        begin = time.perf_counter()
        await client.queue_and_wait("noop", timeout=30)
        latencies.append((time.perf_counter() - begin) * 1000)
    latencies.sort()
    return {
        "enqueue_per_s": RUNS / (enqueued - started),
        "throughput_per_s": RUNS / (done - started),
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
    }


async def main() -> None:
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
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", "fluid_cli", "serve", name, "--port", str(port)],
            env=env,
            stdout=(workdir / f"{name}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for name, port in ports.items()
    }
    redis = aioredis.Redis.from_url(REDIS_URL)
    try:
        async with Client(env["FLUID_DISPATCHER_ADDRESS"]) as client:
            await wait_serving(client)
            figures = await measure(client, f"{{{namespace}}}:finished", redis)
            figures["dispatcher_rss_mb"] = rss_mb(processes["dispatcher"].pid)
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=30)
        async for key in redis.scan_iter(match=f"{{{namespace}}}:*", count=1000):
            await redis.delete(key)
        await redis.aclose()
    print(f"fluid (Redis broker, 1 io-worker process, {RUNS} no-op runs)")
    print(f"  enqueue rate          {figures['enqueue_per_s']:8.0f} runs/s")
    print(f"  no-op throughput      {figures['throughput_per_s']:8.0f} runs/s")
    print(f"  round trip p50 / p99  {figures['p50_ms']:6.2f} / {figures['p99_ms']:.2f} ms")
    print(f"  dispatcher RSS        {figures['dispatcher_rss_mb']:8.1f} MB")


if __name__ == "__main__":
    asyncio.run(main())
