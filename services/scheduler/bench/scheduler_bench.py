"""`make bench-scheduler`: slot lateness of the scheduler on this machine, with a local Redis.

A dispatcher (Redis broker), an io-worker and two scheduler replicas (a leader and a
standby, default settings) run as separate `fluid serve` processes; the worker registers
BENCH_SCHEDULER_TASKS tasks (default 20) that fire every BENCH_SCHEDULER_INTERVAL seconds
(default 1), all on the same slots. After BENCH_SCHEDULER_SECONDS (default 30) it prints

- the leader's own figures (ListSchedules): slot time -> run accepted, every fire since it
  started (the first, warm-up fires included);
- the dispatcher's view of each task's last run: its ``queued`` stamp minus its slot.

The runs of one slot go in one bulk call and share its lateness, so the p99 is about the
worst slot of the run. Target: p99 <= 50 ms.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from fluid.scheduler import Client
from fluid.scheduler.status import SchedulerStatus

HERE = Path(__file__).parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO / "tests"))

from process_helpers import free_port, serving, stop_processes  # noqa: E402

REDIS_URL = os.environ.get("FLUID_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TASKS = int(os.environ.get("BENCH_SCHEDULER_TASKS", "20"))
SECONDS = float(os.environ.get("BENCH_SCHEDULER_SECONDS", "30"))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _serve(service: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # The child keeps its own copy of the log's descriptor.
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "fluid_cli", "serve", service, "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


async def _leader_status(addresses: list[str], dispatcher: str) -> SchedulerStatus:
    for address in addresses:
        async with Client(dispatcher, scheduler_address=address) as client:
            status = await client.list_schedules()
        if status.leader_since is not None:
            return status
    raise SystemExit("no scheduler leads")


async def _wait_until_firing(dispatcher: str, scheduler: str) -> None:
    async with Client(dispatcher, scheduler_address=scheduler) as client:
        for _ in range(300):
            try:
                status = await client.list_schedules()
                if len(status.schedules) == TASKS and all(s.last_run_id for s in status.schedules):
                    return
            except Exception:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the scheduled tasks did not start firing")


async def bench(logs: Path) -> None:
    namespace = f"bench-scheduler-{uuid.uuid4().hex[:8]}"
    ports = {name: free_port() for name in ("dispatcher", "io-worker", "leader", "standby")}
    dispatcher = f"127.0.0.1:{ports['dispatcher']}"
    env = {
        **os.environ,
        "PYTHONPATH": str(HERE),
        "FLUID_BROKER_URL": REDIS_URL,
        "FLUID_BROKER_NAMESPACE": namespace,
        "FLUID_HISTORY_FORWARD": "false",
        "FLUID_DISPATCHER_ADDRESS": dispatcher,
        "FLUID_TASK_MODULES": "scheduler_bench_tasks",
    }
    processes = []
    for name, port in ports.items():
        service = "scheduler" if name in ("leader", "standby") else name
        processes.append(_serve(service, port, env, logs / f"{name}.log"))
        if name == "leader":  # serving before the standby starts, so it takes the lease
            await serving(f"127.0.0.1:{port}")
    schedulers = [f"127.0.0.1:{ports['leader']}", f"127.0.0.1:{ports['standby']}"]
    try:
        for address in [dispatcher, *schedulers]:
            await serving(address)
        await _wait_until_firing(dispatcher, schedulers[0])
        print(f"{TASKS} tasks firing on shared slots; measuring for {SECONDS:.0f} s ...")
        started = time.monotonic()
        await asyncio.sleep(SECONDS)
        status = await _leader_status(schedulers, dispatcher)
        async with Client(dispatcher) as client:
            runs = await asyncio.gather(
                *(client.get_run(schedule.last_run_id) for schedule in status.schedules)
            )
        elapsed = time.monotonic() - started
    finally:
        stop_processes(processes)
        async with aioredis.Redis.from_url(REDIS_URL) as redis:
            async for key in redis.scan_iter(match=f"{{{namespace}}}:*", count=1000):
                await redis.delete(key)

    lateness = status.lateness
    print(f"\nscheduler {status.leader_id} (leader): slot -> run accepted, {lateness.count} fires")
    print(f"  p50 {_ms(lateness.p50)}   p99 {_ms(lateness.p99)}   max {_ms(lateness.max)}")
    queued = sorted(
        (run.queued - run.execute_after).total_seconds()
        for run in runs
        if run.queued is not None and run.execute_after is not None
    )
    print(f"dispatcher: slot -> run queued, the last run of each task ({len(queued)} runs)")
    print(
        f"  p50 {_ms(statistics.median(queued))}   p99 {_ms(_percentile(queued, 0.99))}"
        f"   max {_ms(queued[-1])}"
    )
    verdict = "meets" if lateness.p99 <= 0.050 else "MISSES"
    print(
        f"\np99 {_ms(lateness.p99).strip()} {verdict} the 50 ms target ({elapsed:.0f} s measured)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="fluid-bench-scheduler-") as folder:
        asyncio.run(bench(Path(folder)))


if __name__ == "__main__":
    main()
