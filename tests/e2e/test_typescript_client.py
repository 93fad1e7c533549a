"""The TypeScript client end to end: a Node program queues a run on `fluid dev`, waits for
it over WatchRun (a server stream) and finds it in history with ListRuns, in plaintext and
over mTLS.

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
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fluid.scheduler import Client

from certificates import CertificateAuthority
from process_helpers import dev, free_port, serving, stop_processes

TESTS = Path(__file__).resolve().parents[1]
CLIENT = TESTS.parent / "clients" / "typescript"
NODE_MAJOR = 20
TASKS = ("--tasks", "sample_tasks")
TLS_VARIABLES = (
    "FLUID_TLS_CERT_FILE",
    "FLUID_TLS_KEY_FILE",
    "FLUID_TLS_CA_FILE",
    "FLUID_TLS_SERVER_NAME",
)


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


@contextmanager
def running_fluid_dev(tmp_path: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """`fluid dev` in its own process, on a free port, with the test tasks, in plaintext
    unless ``env`` (added to the variables it gets) sets FLUID_TLS_*. Its address."""
    port = free_port()
    environment = {
        **{name: value for name, value in os.environ.items() if name not in TLS_VARIABLES},
        "PYTHONPATH": str(TESTS),
        "FLUID_BROKER_URL": "memory://",
        "FLUID_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'history.db'}",
        "FLUID_LEASE_WAIT_SECONDS": "0.2",
        **(env or {}),
    }
    log_path = tmp_path / "fluid-dev.log"
    with log_path.open("w") as log:
        process = dev(port, 0, environment, log, *TASKS)
        try:
            yield f"127.0.0.1:{port}"
        finally:
            (code,) = stop_processes([process])
            assert code == 0, log_path.read_text()


@pytest.fixture
def fluid_dev(tmp_path: Path) -> Iterator[str]:
    """`fluid dev` in plaintext."""
    with running_fluid_dev(tmp_path) as address:
        yield address


async def tasks_registered(address: str) -> None:
    """Wait for `fluid dev`'s worker to register say_hi: it does so right after serving
    starts. The Python client dials TLS when the FLUID_TLS_* variables say so."""
    await serving(address)
    async with Client(address) as client:
        for _ in range(100):
            if any(task.name == "say_hi" for task in await client.list_tasks()):
                return
            await asyncio.sleep(0.05)
    raise AssertionError("say_hi was never registered")


async def run_example(
    example: Path, address: str, env: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    """The example's exit code, stdout and stderr, for say_hi with Ada; ``env`` replaces
    the FLUID_TLS_* variables the test process has."""
    environment = {name: value for name, value in os.environ.items() if name not in TLS_VARIABLES}
    environment.update(env or {})
    node = await asyncio.create_subprocess_exec(
        tool("node"),
        str(example),
        "--address",
        address,
        "--timeout-ms",
        "20000",
        "say_hi",
        json.dumps({"name": "Ada"}),
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(node.communicate(), timeout=40)
    assert node.returncode is not None
    return node.returncode, stdout.decode(), stderr.decode()


async def test_node_queues_a_run_waits_for_it_and_finds_it_in_history(
    example: Path, fluid_dev: str
) -> None:
    await tasks_registered(fluid_dev)

    code, stdout, stderr = await run_example(example, fluid_dev)
    assert code == 0, stderr
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


async def test_node_dials_mtls_with_a_client_certificate_and_is_refused_without_one(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = CertificateAuthority(tmp_path, "fluid")
    server, client = ca.issue("server"), ca.issue("client")
    # A CA beside the server's certificate makes client certificates required.
    mtls = {
        "FLUID_TLS_CERT_FILE": str(server.cert),
        "FLUID_TLS_KEY_FILE": str(server.key),
        "FLUID_TLS_CA_FILE": str(ca.cert),
    }
    client_env = {
        "FLUID_TLS_CERT_FILE": str(client.cert),
        "FLUID_TLS_KEY_FILE": str(client.key),
        "FLUID_TLS_CA_FILE": str(ca.cert),
    }
    with running_fluid_dev(tmp_path, mtls) as address:
        # This process's Python client (health check, list_tasks) reads them too.
        monkeypatch.delenv("FLUID_TLS_SERVER_NAME", raising=False)
        for variable, value in client_env.items():
            monkeypatch.setenv(variable, value)
        await tasks_registered(address)

        code, stdout, stderr = await run_example(example, address, client_env)
        assert code == 0, stderr
        printed: dict[str, Any] = json.loads(stdout)
        assert printed["state"] == "success" and printed["result"] == "Hi Ada!"
        assert printed["history"] is not None and printed["history"]["state"] == "success"

        # The server's certificate is trusted, but the handshake wants a client's.
        code, stdout, stderr = await run_example(
            example, address, {"FLUID_TLS_CA_FILE": str(ca.cert)}
        )
        assert code != 0, stdout
        assert stdout == ""
        assert stderr.startswith("error: "), stderr
