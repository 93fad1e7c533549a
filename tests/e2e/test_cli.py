"""The `fluid` command against a running system, as an operator types it."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from fluid.service.host import Host

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
