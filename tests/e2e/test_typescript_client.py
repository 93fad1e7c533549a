"""The TypeScript client end to end: a Node program queues a run on `fluid dev`, waits for
it over WatchRun (a server stream) and finds it in history with ListRuns.

The test installs the client's npm dependencies itself (from the committed lock) and
compiles the example with the client's own TypeScript; it needs only Node.js >= 20 and npm.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fluid.scheduler import Client

from process_helpers import free_port, serving, stop_processes

TESTS = Path(__file__).resolve().parents[1]
CLIENT = TESTS.parent / "clients" / "typescript"
NODE_MAJOR = 20
TASKS = ("--tasks", "sample_tasks")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: the TypeScript client test needs Node.js >= "
            f"{NODE_MAJOR} with npm (Debian: apt-get install nodejs npm)"
        )
    return path


def install_dependencies() -> None:
    """`npm ci`, unless node_modules already holds exactly the lock's packages.

    npm ci deletes node_modules first: a flock on package.json keeps two test runs on
    this machine (or `make clients`) from deleting it under each other.
    """
    npm = tool("npm")
    with (CLIENT / "package.json").open() as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        installed = CLIENT / "node_modules" / ".package-lock.json"
        lock = CLIENT / "package-lock.json"
        if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
            return
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CLIENT,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def example() -> Iterator[Path]:
    """The example compiled into a directory of this run's own, inside the package so
    that Node resolves its imports from the package's node_modules."""
    node = tool("node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    assert int(version.stdout.strip().lstrip("v").split(".")[0]) >= NODE_MAJOR, version.stdout
    install_dependencies()
    build = Path(tempfile.mkdtemp(prefix=".test-build-", dir=CLIENT))
    try:
        tsc = CLIENT / "node_modules" / "typescript" / "bin" / "tsc"
        compiled = subprocess.run(
            [node, str(tsc), "-p", str(CLIENT / "tsconfig.json"), "--outDir", str(build)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert compiled.returncode == 0, f"tsc failed:\n{compiled.stdout}\n{compiled.stderr}"
        yield build / "examples" / "queue_and_wait.js"
    finally:
        shutil.rmtree(build, ignore_errors=True)


@pytest.fixture
def fluid_dev(tmp_path: Path) -> Iterator[str]:
    """`fluid dev` in its own process, on a free port, with the test tasks."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(TESTS),
        "FLUID_BROKER_URL": "memory://",
        "FLUID_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'history.db'}",
        "FLUID_LEASE_WAIT_SECONDS": "0.2",
    }
    log_path = tmp_path / "fluid-dev.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fluid_cli", "dev", "--port", str(port), *TASKS],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"127.0.0.1:{port}"
        finally:
            (code,) = stop_processes([process])
            assert code == 0, log_path.read_text()


async def test_node_queues_a_run_waits_for_it_and_finds_it_in_history(
    example: Path, fluid_dev: str
) -> None:
    await serving(fluid_dev)
    async with Client(fluid_dev) as client:
        for _ in range(100):  # the worker registers its tasks right after serving starts
            if any(task.name == "say_hi" for task in await client.list_tasks()):
                break
            await asyncio.sleep(0.05)

    node = await asyncio.create_subprocess_exec(
        tool("node"),
        str(example),
        "--address",
        fluid_dev,
        "--timeout-ms",
        "20000",
        "say_hi",
        json.dumps({"name": "Ada"}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(node.communicate(), timeout=40)
    assert node.returncode == 0, stderr.decode()
    printed: dict[str, Any] = json.loads(stdout)

    assert printed["state"] == "success"
    assert printed["result"] == "Hi Ada!"
    assert printed["error"] is None
    # WatchRun ends with the terminal state, whatever it saw before.
    assert printed["watched_states"][-1] == "success"
    assert printed["history"] is not None, "the run never appeared in ListRuns"
    assert printed["history"]["state"] == "success"
    assert printed["history"]["worker_id"].startswith("io-")

    async with Client(fluid_dev) as client:
        run = await client.get_run(printed["run_id"])
    assert run.params == {"name": "Ada"}
