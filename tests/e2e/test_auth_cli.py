"""`fluid dev --auth`, `fluid auth token`, `--token`/FLUID_TOKEN and `fluid serve`'s refusal
to listen beyond loopback without auth, as an operator types them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from process_helpers import free_port, serving, stop_processes

CLI = [sys.executable, "-m", "fluid_cli"]


def _env(**extra: str) -> dict[str, str]:
    kept = {name: value for name, value in os.environ.items() if not name.startswith("FLUID_")}
    return {**kept, "COLUMNS": "200", **extra}


async def fluid(cwd: Path, *args: str, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(**env),
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
def dev_with_auth(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    log_path = tmp_path / "fluid-dev.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*CLI, "dev", "--auth", "--port", str(port), "--http-port", "0"],
            cwd=tmp_path,
            env=_env(
                FLUID_BROKER_URL="memory://",
                FLUID_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'history.db'}",
                FLUID_LEASE_WAIT_SECONDS="0.2",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"127.0.0.1:{port}", process
        finally:
            (code,) = stop_processes([process])
            assert code == 0, log_path.read_text()
            assert "auth required" in log_path.read_text()


async def test_dev_with_auth_needs_the_admin_token(
    dev_with_auth: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    address, _ = dev_with_auth
    await serving(address)  # health stays open
    token_file = tmp_path / ".fluid" / "admin.token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / ".fluid" / "signing.key").stat().st_mode & 0o777 == 0o600
    admin = token_file.read_text().strip()

    code, _, err = await fluid(tmp_path, "--address", address, "tasks")
    assert code == 1 and "missing bearer token" in err
    code, out, err = await fluid(
        tmp_path, "--address", address, "--token", admin, "queue", "say_hi", "name=Ada", "--wait"
    )
    assert code == 0 and "success" in out, err

    # `fluid auth token` finds the key dev made; the new token's roles are all it gets.
    code, reader, err = await fluid(tmp_path, "auth", "token", "--roles", "read", "--ttl", "1h")
    assert code == 0, err
    code, out, err = await fluid(
        tmp_path, "--address", address, "tasks", "--json", FLUID_TOKEN=reader.strip()
    )
    assert code == 0 and "say_hi" in {task["name"] for task in json.loads(out)}, err
    code, _, err = await fluid(
        tmp_path, "--address", address, "queue", "say_hi", FLUID_TOKEN=reader.strip()
    )
    assert code == 1 and "needs the queue role" in err


async def test_minting_without_a_signing_key_says_what_it_needs(tmp_path: Path) -> None:
    code, _, err = await fluid(tmp_path, "auth", "token", "--roles", "read")
    assert code == 1 and "needs a signing key" in err
    code, _, err = await fluid(tmp_path, "auth", "token", "--roles", "root", "--key", "x")
    assert code == 1 and "unknown role" in err


async def test_serve_refuses_a_non_loopback_address_without_auth(tmp_path: Path) -> None:
    code, _, err = await fluid(
        tmp_path, "serve", "dispatcher", "--host", "0.0.0.0", "--port", str(free_port())
    )
    assert code == 2 and "refusing to serve on 0.0.0.0 without auth" in err
    assert "FLUID_INSECURE=true" in err


@pytest.fixture
def insecure_dispatcher(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`fluid serve dispatcher` on 0.0.0.0 with FLUID_INSECURE=true; its log file."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*CLI, "serve", "dispatcher", "--host", "0.0.0.0", "--port", str(port)],
            cwd=tmp_path,
            env=_env(FLUID_INSECURE="true", FLUID_BROKER_URL="memory://"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"127.0.0.1:{port}", log_path
        finally:
            (code,) = stop_processes([process])
            assert code == 0, log_path.read_text()


async def test_serve_listens_beyond_loopback_when_insecure_is_explicit(
    insecure_dispatcher: tuple[str, Path],
) -> None:
    address, log_path = insecure_dispatcher
    await serving(address)
    assert "serving on 0.0.0.0 without auth (FLUID_INSECURE=true)" in log_path.read_text()
