"""The `fluid` command against a running system, as an operator types it."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fluid.scheduler import Client, NotFoundError, TaskState
from fluid.service.host import Host

from embedded import embedded_system
from history_polling import stored_run
from process_helpers import free_port


async def fluid(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fluid_cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def fluid_json(address: str, *args: str) -> Any:
    code, out, err = await fluid("--address", address, *args, "--json")
    assert code == 0, err
    return json.loads(out)


async def test_queue_wait_then_find_the_run(system: Host) -> None:
    run = await fluid_json(system.address, "queue", "say_hi", "name=Ada", "--wait")
    assert run["state"] == "success" and run["result"] == "Hi Ada!"
    shown = await fluid_json(system.address, "run", run["id"])
    assert shown["id"] == run["id"]
    code, out, _ = await fluid("--address", system.address, "queue", "say_hi", "name=Bo", "--wait")
    assert code == 0 and "success" in out


async def test_queue_many_with_wait_reports_the_states(system: Host) -> None:
    summary = await fluid_json(
        system.address, "queue", "say_hi", "name=Ada", "--count", "5", "--wait"
    )
    assert len(summary["runs"]) == 5 and summary["states"] == {"success": 5}


async def test_tasks_and_status(system: Host) -> None:
    tasks = {task["name"]: task for task in await fluid_json(system.address, "tasks")}
    assert tasks["say_hi"]["workers"] == 1
    status = await fluid_json(system.address, "status")
    assert status["services"]["dispatcher"] == "SERVING"
    assert status["services"]["history"] == "SERVING"
    assert set(status["queue"]) == {"high", "medium", "low"}
    [worker] = status["workers"]
    assert "say_hi" in worker["tasks"] and worker["kind"] == "io"


async def test_disable_then_enable_a_task(system: Host) -> None:
    code, out, _ = await fluid("--address", system.address, "tasks", "disable", "say_hi")
    assert code == 0 and "disabled" in out
    assert not {t["name"]: t for t in await fluid_json(system.address, "tasks")}["say_hi"][
        "enabled"
    ]
    code, _, _ = await fluid("--address", system.address, "tasks", "enable", "say_hi")
    assert code == 0


async def test_mistakes_are_one_clear_line(system: Host) -> None:
    code, _, err = await fluid("--address", system.address, "queue", "nope")
    assert code == 1 and "task nope not found" in err and "Traceback" not in err
    code, _, err = await fluid("--address", system.address, "queue", "say_hi", "nme=Ada")
    assert code == 1 and "params.name" in err and "Traceback" not in err
    code, _, err = await fluid("--address", f"127.0.0.1:{free_port()}", "tasks")
    assert code == 1 and "cannot reach fluid" in err and "Traceback" not in err


async def test_logs_prints_what_a_run_logged(system: Host) -> None:
    run = await fluid_json(system.address, "queue", "chatty", "--wait")
    code, out, _ = await fluid("--address", system.address, "logs", run["id"])
    assert code == 0 and "almost done" in out


@pytest.fixture
async def forgetful_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Host]:
    """A system whose dispatcher forgets a run once it is done: then only history has it."""
    monkeypatch.setenv("FLUID_FINISHED_RUN_TTL_SECONDS", "0")
    monkeypatch.setenv("FLUID_HOUSEKEEPING_INTERVAL_SECONDS", "0.1")
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    async with embedded_system(
        monkeypatch, database_url=database_url, broker_url="memory://"
    ) as host:
        yield host


async def forgotten(client: Client, run_id: str, attempts: int = 100) -> None:
    """Wait until the dispatcher no longer knows the run (bounded polling)."""
    for _ in range(attempts):
        try:
            await client.get_run(run_id)
        except NotFoundError:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the dispatcher still has run {run_id}")


async def test_run_and_logs_find_a_run_the_dispatcher_forgot_in_history(
    forgetful_system: Host,
) -> None:
    address = forgetful_system.address
    # No --wait: the dispatcher may forget the run before a watch of it begins.
    queued = await fluid_json(address, "queue", "chatty")
    async with Client(address) as client:
        await stored_run(client, queued["id"], TaskState.success)
        await forgotten(client, queued["id"])
    shown = await fluid_json(address, "run", queued["id"])
    assert shown["id"] == queued["id"] and shown["state"] == "success"
    code, out, _ = await fluid("--address", address, "logs", queued["id"])
    assert code == 0 and "almost done" in out
