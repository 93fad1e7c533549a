"""A ``Client()`` made by task code reaches the system its worker belongs to.

The system listens on a random port and nothing says so in the environment: the io-worker
sets them for the tasks it runs on its loop, and the cpu-runner gives them to each
run's process.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fluid.scheduler import Client, TaskState
from fluid.service.host import Host
from fluid.service.settings import ServerSettings

from conftest import TESTS

ADDRESSES = (
    "FLUID_ADDRESS",
    "FLUID_DISPATCHER_ADDRESS",
    "FLUID_HISTORY_ADDRESS",
    "FLUID_SCHEDULER_ADDRESS",
)


async def test_a_bare_client_in_a_task_reaches_its_workers_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ADDRESSES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLUID_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/history.db")
    monkeypatch.setenv("FLUID_LEASE_WAIT_SECONDS", "0.2")
    monkeypatch.setenv("FLUID_CPU_BACKEND", "local")
    # The run's process imports client_tasks by name.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    )
    host = Host(
        ["history", "dispatcher", "io-worker", "cpu-runner"],
        settings=ServerSettings(port=0, shutdown_grace_seconds=1),
        task_modules=["client_tasks"],
    )
    await host.start()
    try:
        async with Client(host.address) as client:
            first = await client.queue_and_wait("io_look_around", timeout=30)
            assert first.state is TaskState.success, first.error
            assert first.result["tasks"] == ["cpu_look_around", "io_look_around"]
            # Each finds the other's run in history.
            cpu = await client.queue_and_wait("cpu_look_around", run_id=first.id, timeout=30)
            assert cpu.state is TaskState.success, cpu.error
            assert cpu.result == {"tasks": first.result["tasks"], "stored": True}
            io = await client.queue_and_wait("io_look_around", run_id=cpu.id, timeout=30)
            assert io.state is TaskState.success, io.error
            assert io.result["stored"] is True
    finally:
        await host.stop()
    # What the io-worker exported for its tasks goes with it.
    assert not set(ADDRESSES) & set(os.environ)
