"""Each service exposes its metrics for Prometheus; the series the operators need exist."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest

from fluid.scheduler import Client, TaskState

from history_polling import stored_run
from process_helpers import free_port, serve, serving, stop_processes, system_env

TESTS = Path(__file__).parent.parent


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
        return text


def has_series(text: str, name: str, **labels: str) -> bool:
    """Whether ``text`` has a sample of ``name`` carrying (at least) ``labels``."""
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    for line in text.splitlines():
        series, _, _ = line.partition(" ")
        metric, _, label_text = series.partition("{")
        if metric == name and wanted <= set(label_text.rstrip("}").split(",")):
            return True
    return False


@pytest.mark.timeout(120)
async def test_services_expose_their_series(tmp_path: Path) -> None:
    names = ("history", "dispatcher", "io-worker", "scheduler")
    ports = {name: free_port() for name in names}
    metrics_ports = {name: free_port() for name in names}
    # A short lease, so that the run of the worker killed below expires within the test.
    base = system_env(
        tmp_path,
        ports,
        FLUID_HOUSEKEEPING_INTERVAL_SECONDS="0.2",
        FLUID_LEASE_TTL_SECONDS="1",
    )
    processes = [
        serve(
            name,
            ports[name],
            {**base, "FLUID_METRICS_PORT": str(metrics_ports[name])},
            tmp_path / f"{name}.log",
        )
        for name in names
    ]
    try:
        for port in ports.values():
            await serving(f"127.0.0.1:{port}")
        async with Client(
            base["FLUID_DISPATCHER_ADDRESS"], history_address=base["FLUID_HISTORY_ADDRESS"]
        ) as client:
            for _ in range(200):
                if any(task.name == "exclusive" for task in await client.list_tasks()):
                    break
                await asyncio.sleep(0.05)
            ok = await client.queue_and_wait("say_hi", name="Ada", timeout=20)
            await client.queue_and_wait("explode", timeout=20)
            first, second = await asyncio.gather(
                client.queue("exclusive", seconds=0.3), client.queue("exclusive", seconds=0.3)
            )
            await client.wait(first.id, timeout=20)
            await client.wait(second.id, timeout=20)
            await stored_run(client, ok.id, TaskState.success)
            for _ in range(100):  # the scheduler fired `tick` (every second) at least once
                if (await client.list_runs(task="tick")).runs:
                    break
                await asyncio.sleep(0.1)
            worker = await asyncio.to_thread(scrape, metrics_ports["io-worker"])
            # A worker dies holding a run: its lease expires and the run is queued again.
            stranded = await client.queue("sleeper", seconds=60)
            for _ in range(100):
                if (await client.get_run(stranded.id)).state is TaskState.running:
                    break
                await asyncio.sleep(0.05)
            processes[names.index("io-worker")].kill()
            for _ in range(100):
                if (await client.get_run(stranded.id)).state is not TaskState.running:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # one housekeeping pass refreshes the queue depth
            dispatcher = await asyncio.to_thread(scrape, metrics_ports["dispatcher"])
            history = await asyncio.to_thread(scrape, metrics_ports["history"])
            scheduler = await asyncio.to_thread(scrape, metrics_ports["scheduler"])
    finally:
        await asyncio.to_thread(stop_processes, processes)

    for priority in ("high", "medium", "low"):
        assert has_series(dispatcher, "fluid_queue_depth", priority=priority)
    finished = "fluid_runs_finished_total"
    assert has_series(dispatcher, finished, fluid_state="success", fluid_task="say_hi")
    assert has_series(dispatcher, finished, fluid_state="failure", fluid_task="explode")
    assert has_series(dispatcher, finished, fluid_state="rate_limited", fluid_task="exclusive")
    assert has_series(dispatcher, "fluid_run_duration_seconds_bucket", fluid_task="say_hi")
    assert has_series(dispatcher, "fluid_run_queue_wait_seconds_bucket", fluid_task="say_hi")
    assert has_series(dispatcher, "fluid_runs_rate_limited_total", fluid_task="exclusive")
    assert has_series(dispatcher, "fluid_leases_expired_total", fluid_task="sleeper")
    assert has_series(history, "fluid_history_ingest_lag_seconds_bucket")
    assert has_series(scheduler, "fluid_schedule_lateness_seconds_bucket", fluid_task="tick")
    assert has_series(worker, "python_gc_objects_collected_total")  # workers serve it too
    assert has_series(dispatcher, "fluid_dead_letters")
    assert has_series(dispatcher, "fluid_outbox_pending")
    # Every background loop says whether it is failing (0 here: none is).
    assert has_series(dispatcher, "fluid_loops_degraded", loop="history-forwarder")
    assert has_series(dispatcher, "fluid_loops_degraded", loop="dispatcher-housekeeping")
    assert has_series(worker, "fluid_loops_degraded", loop="lease-loop", owner="io-worker")
    assert has_series(scheduler, "fluid_loops_degraded", loop="scheduler-pass")
