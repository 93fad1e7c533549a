"""`make bench-cpu`: the cpu-bound round trip, fresh interpreter against warm fork.

An embedded system (history, dispatcher with the memory store, cpu-runner) on port 0
runs ``cpu_noop`` ROUND_TRIPS times (default 50) in sequence with ``queue_and_wait``,
per process mode, after a few warm-up runs. It prints p50/p99 of the whole round trip
and, to tell the process's share from the queue's, of the runner's backend alone.

Fresh interpreters read and write ``.pyc`` files under a temporary
``PYTHONPYCACHEPREFIX``, as they would in an image built with compiled bytecode, whatever
this environment says (``PYTHONDONTWRITEBYTECODE`` would make each one compile its
imports from source, and measure that instead).
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).parent
ROUND_TRIPS = int(os.environ.get("BENCH_CPU_ROUND_TRIPS", "50"))
WARM_UP = 5
TASK_MODULE = "cpu_bench_tasks"


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):7.1f} ms   p99 {p99:7.1f} ms"


async def _timed(call: Callable[[], Awaitable[None]]) -> list[float]:
    for _ in range(WARM_UP):
        await call()
    samples = []
    for _ in range(ROUND_TRIPS):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def bench_mode(mode: str, folder: Path) -> tuple[list[float], list[float]]:
    from fluid.scheduler import Client, TaskState
    from fluid.scheduler.loader import load_tasks
    from fluid.scheduler.run import Run
    from fluid.service.host import Host
    from fluid.service.settings import ClientSettings, ServerSettings
    from fluid_cpu_runner.local import LocalBackend, launcher_for

    os.environ["FLUID_CPU_MODE"] = mode
    os.environ["FLUID_DATABASE_URL"] = f"sqlite+aiosqlite:///{folder / f'{mode}.db'}"
    host = Host(
        ["history", "dispatcher", "cpu-runner"],
        settings=ServerSettings(port=0, shutdown_grace_seconds=2),
        task_modules=[TASK_MODULE],
    )
    await host.start()
    try:
        async with Client(host.address) as client:

            async def round_trip() -> None:
                run = await client.queue_and_wait("cpu_noop", timeout=30)
                assert run.state is TaskState.success, run.error

            system = await _timed(round_trip)
    finally:
        await host.stop()

    task = load_tasks([TASK_MODULE])["cpu_noop"]
    backend = LocalBackend(
        launcher_for(mode, [TASK_MODULE]), clients=ClientSettings(address=host.address)
    )
    await backend.start()

    async def process_only() -> None:
        report = await backend.execute(task, Run(id="bench", task="cpu_noop"))
        assert report.state is TaskState.success, report.error

    return system, await _timed(process_only)


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    sys.path.insert(0, str(HERE))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(HERE), os.environ.get("PYTHONPATH")])
    )
    os.environ.setdefault("FLUID_LEASE_WAIT_SECONDS", "1")
    print(f"cpu-bound round trip, {ROUND_TRIPS} sequential queue_and_wait calls per mode")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        for label, mode in (("fresh interpreter", "fresh"), ("warm fork", "fork")):
            system, process = await bench_mode(mode, folder)
            print(f"  {label:18} round trip {_percentiles(system)}")
            print(f"  {'':18} process    {_percentiles(process)}")


if __name__ == "__main__":
    asyncio.run(main())
