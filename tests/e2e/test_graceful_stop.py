"""A stopping worker hands back what it cannot finish: no run waits for a lease to expire."""

from __future__ import annotations

import pytest

from fluid.scheduler import Client, TaskState
from fluid.service.host import Host
from fluid.service.settings import ClientSettings, ServerSettings


async def test_unfinished_runs_are_handed_back_and_run_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLUID_BROKER_URL", "memory://")
    monkeypatch.setenv("FLUID_HISTORY_FORWARD", "false")
    # Leases far longer than the test: only a hand-back can free the runs in time.
    monkeypatch.setenv("FLUID_LEASE_TTL_SECONDS", "600")
    monkeypatch.setenv("FLUID_LEASE_WAIT_SECONDS", "0.2")
    dispatcher = Host(["dispatcher"], settings=ServerSettings(port=0))
    await dispatcher.start()

    def worker() -> Host:
        return Host(
            ["io-worker"],
            settings=ServerSettings(port=0, shutdown_grace_seconds=0.2),
            task_modules=["sample_tasks"],
            clients=ClientSettings(address=dispatcher.address),
        )

    first = worker()
    await first.start()
    try:
        async with Client(dispatcher.address) as client:
            runs = [await client.queue("sleeper", seconds=1.5) for _ in range(3)]
            for run in runs:
                async for update in client.watch(run.id):
                    if update.state is TaskState.running:
                        break
            await first.stop()  # grace 0.2 s: the runs are still sleeping
            handed_back = [await client.get_run(run.id) for run in runs]
            assert {run.state for run in handed_back} == {TaskState.queued}
            assert {run.attempt for run in handed_back} == {0}

            second = worker()
            await second.start()
            try:
                done = [await client.wait(run.id, timeout=20) for run in runs]
            finally:
                await second.stop()
        assert {run.state for run in done} == {TaskState.success}
        assert {run.attempt for run in done} == {0}
    finally:
        await first.stop()
        await dispatcher.stop()
