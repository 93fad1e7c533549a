"""dispatcher, io-worker and history as separate `fluid serve` processes on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluid.scheduler import Client, TaskState

from history_polling import stored_run
from process_helpers import free_port, serve, serving, stop_processes, system_env

TESTS = Path(__file__).parent.parent


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[dict[str, str]]:
    ports = {name: free_port() for name in ("history", "dispatcher", "io-worker")}
    addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    env = system_env(tmp_path, ports)
    started = [serve(name, port, env, tmp_path / f"{name}.log") for name, port in ports.items()]
    try:
        yield addresses
    finally:
        codes = dict(zip(ports, stop_processes(started), strict=True))
        logs = {name: (tmp_path / f"{name}.log").read_text() for name in ports}
        assert all(code == 0 for code in codes.values()), (codes, logs)


async def test_a_run_crosses_three_processes(processes: dict[str, str]) -> None:
    for address in processes.values():
        await serving(address)
    async with Client(processes["dispatcher"], history_address=processes["history"]) as client:
        for _ in range(100):  # the worker registers right after it starts serving health
            if any(task.name == "say_hi" for task in await client.list_tasks()):
                break
            await asyncio.sleep(0.05)
        run = await client.queue_and_wait("say_hi", name="Ada", timeout=20)
        assert run.state is TaskState.success
        assert run.result == "Hi Ada!"
        assert run.worker_id.startswith("io-")
        stored = await stored_run(client, run.id, TaskState.success)
        assert stored.result == "Hi Ada!"
        failed = await client.queue_and_wait("explode", timeout=20)
        assert failed.state is TaskState.failure
