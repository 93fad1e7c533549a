"""The scheduler in a real embedded system (dispatcher, scheduler, io-worker on one port)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import grpc
import pytest

from fluid.scheduler import Client
from fluid.scheduler.v1 import dispatcher_pb2, dispatcher_pb2_grpc, task_pb2
from fluid.service.channel import open_channel
from fluid.service.host import Host
from fluid.service.settings import ServerSettings

from . import slot_tasks

SLOTS_TO_SEE = 3


async def started_host(services: list[str]) -> Host:
    host = Host(
        services,
        settings=ServerSettings(port=0, shutdown_grace_seconds=1),
        # By this module's name for it, so the worker's runs append to the RECORDED we read.
        task_modules=[slot_tasks.__name__],
    )
    await host.start()
    return host


@pytest.fixture
async def system(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Host]:
    monkeypatch.setenv("FLUID_BROKER_URL", "memory://")
    monkeypatch.setenv("FLUID_HISTORY_FORWARD", "false")
    monkeypatch.setenv("FLUID_LEASE_WAIT_SECONDS", "0.2")
    monkeypatch.setenv("FLUID_SCHEDULER_REFRESH_SECONDS", "0.2")
    slot_tasks.RECORDED.clear()
    host = await started_host(["dispatcher", "scheduler", "io-worker"])
    yield host
    await host.stop()


async def recorded(task: str, count: int) -> list[float]:
    """The slots the task's runs recorded, once there are ``count`` (bounded wait)."""
    for _ in range(200):
        if len(slot_tasks.RECORDED[task]) >= count:
            return sorted(slot_tasks.RECORDED[task])
        await asyncio.sleep(0.05)
    raise AssertionError(f"{task} recorded only {slot_tasks.RECORDED[task]}")


async def test_an_embedded_scheduler_fires_each_slot_once(system: Host) -> None:
    slots = await recorded("every_second", SLOTS_TO_SEE)
    assert all(slot == int(slot) for slot in slots)  # exact seconds
    assert slots == [slots[0] + n for n in range(len(slots))]  # no gap, no repeat
    async with Client(system.address) as client:
        status = await client.list_schedules()
        assert status.leader_id == status.replica_id  # the embedded replica always leads
        assert status.leader_since is not None
        assert status.lateness.count >= SLOTS_TO_SEE
        schedules = {item.task: item for item in status.schedules}
        assert set(schedules) == {"every_second", "every_second_catch_up"}
        tick = schedules["every_second"]
        assert tick.description == "every 0:00:01"
        assert tick.last_slot is not None and tick.next_fire is not None
        assert tick.next_fire > tick.last_slot
        run = await client.get_run(tick.last_run_id)
        assert run.task == "every_second"
        assert run.execute_after == tick.last_slot  # the run carries its slot


async def test_a_disabled_task_stops_firing(system: Host) -> None:
    await recorded("every_second", 1)
    async with Client(system.address) as client:
        await client.set_task_enabled("every_second", False)
        for _ in range(100):  # the scheduler learns it at its next refresh
            status = await client.list_schedules()
            if not next(s for s in status.schedules if s.task == "every_second").enabled:
                break
            await asyncio.sleep(0.05)
        before = len(slot_tasks.RECORDED["every_second"])
        await recorded(
            "every_second_catch_up", len(slot_tasks.RECORDED["every_second_catch_up"]) + 2
        )
        # Runs already queued may still end (aborted, not executed): none was added.
        assert len(slot_tasks.RECORDED["every_second"]) == before


def fluid_cli(address: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    # `fluid` runs its own event loop: a subprocess, as a user would run it.
    return subprocess.run(
        [sys.executable, "-m", "fluid_cli", "--address", address, *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        # Wide enough that rich does not wrap the column headers.
        env={**os.environ, "COLUMNS": "200"},
    )


async def test_fluid_tasks_shows_next_fire_and_last_run(system: Host) -> None:
    await recorded("every_second", 1)
    result = await asyncio.to_thread(fluid_cli, system.address, "tasks", "--json")
    assert result.returncode == 0, result.stderr
    tasks = {item["name"]: item for item in json.loads(result.stdout)}
    assert tasks["every_second"]["next_fire"] is not None
    assert tasks["every_second"]["last_run_id"]
    table = await asyncio.to_thread(fluid_cli, system.address, "tasks")
    assert "next fire" in table.stdout and "last run" in table.stdout


async def test_fluid_tasks_without_a_scheduler_shows_dashes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLUID_BROKER_URL", "memory://")
    monkeypatch.setenv("FLUID_HISTORY_FORWARD", "false")
    monkeypatch.setenv("FLUID_LEASE_WAIT_SECONDS", "0.2")
    host = await started_host(["dispatcher", "io-worker"])
    try:
        async with Client(host.address) as client:
            for _ in range(100):
                if await client.list_tasks():
                    break
                await asyncio.sleep(0.05)
        result = await asyncio.to_thread(fluid_cli, host.address, "tasks", "--json")
    finally:
        await host.stop()
    assert result.returncode == 0, result.stderr
    assert {item["next_fire"] for item in json.loads(result.stdout)} == {None}


async def test_an_invalid_crontab_is_refused_at_registration(system: Host) -> None:
    invalid = task_pb2.TaskDefinition(
        name="broken", schedule=task_pb2.Schedule(crontab=task_pb2.CrontabSchedule(minute="61"))
    )
    async with open_channel(system.address) as channel:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.RegisterWorker(
                dispatcher_pb2.RegisterWorkerRequest(
                    worker_id="w", kind=dispatcher_pb2.WORKER_KIND_IO, tasks=[invalid]
                )
            )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "crontab" in (refused.value.details() or "")
