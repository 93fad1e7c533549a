"""Helpers of the tests that run fluid services as separate processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fluid.service.channel import open_channel


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def serving(address: str, attempts: int = 200) -> None:
    """Wait until the process at ``address`` reports SERVING (bounded)."""
    async with open_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(attempts):
            try:
                response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"nothing serving at {address}")


def stop_processes(processes: list[subprocess.Popen[bytes]], timeout: float = 20) -> list[int]:
    """SIGTERM every process, wait for each (SIGKILL after ``timeout``); their exit codes."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return [process.returncode for process in processes]


def serve(service: str, port: int, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``fluid serve <service>`` on ``port``, its output appended to ``log``."""
    # The child keeps its own copy of the log's descriptor.
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "fluid_cli", "serve", service, "--port", str(port)],
            env=dict(env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def dev(
    port: int,
    http_port: int,
    env: Mapping[str, str],
    output: IO[bytes] | IO[str],
    *args: str,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``fluid dev`` on ``port`` (HTTP on ``http_port``, 0: any) with ``args``
    (``--tasks ...``), its output written to ``output``."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fluid_cli",
            "dev",
            "--port",
            str(port),
            "--http-port",
            str(http_port),
            *args,
        ],
        env=dict(env),
        cwd=cwd,
        stdout=output,
        stderr=subprocess.STDOUT,
    )


def system_env(workdir: Path, ports: Mapping[str, int], **extra: str) -> dict[str, str]:
    """Environment of `fluid serve` processes forming one system with sample_tasks.

    History on a SQLite file in ``workdir``; the services find each other on ``ports``.
    """
    return {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parent),
        "FLUID_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'history.db'}",
        "FLUID_DISPATCHER_ADDRESS": f"127.0.0.1:{ports['dispatcher']}",
        "FLUID_HISTORY_ADDRESS": f"127.0.0.1:{ports['history']}",
        "FLUID_TASK_MODULES": "sample_tasks",
        # A stopping worker waits for its current long poll: keep polls short in tests.
        "FLUID_LEASE_WAIT_SECONDS": "0.2",
        **extra,
    }
