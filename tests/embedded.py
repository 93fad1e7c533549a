"""The embedded fluid system the cross-service tests run against: one in-process server."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from fluid.service.auth import Role, load_key, mint_token
from fluid.service.host import Host
from fluid.service.settings import ServerSettings


@asynccontextmanager
async def embedded_system(
    monkeypatch: pytest.MonkeyPatch, *, database_url: str, broker_url: str | None = None
) -> AsyncIterator[Host]:
    """History, dispatcher and io-worker (sample_tasks) on port 0, with short leases and
    long polls so that tests run quickly; ``broker_url`` None keeps FLUID_BROKER_URL."""
    monkeypatch.setenv("FLUID_DATABASE_URL", database_url)
    if broker_url is not None:
        monkeypatch.setenv("FLUID_BROKER_URL", broker_url)
    monkeypatch.setenv("FLUID_LEASE_TTL_SECONDS", "3")
    # A stopping worker waits for its current long poll: keep polls short in tests.
    monkeypatch.setenv("FLUID_LEASE_WAIT_SECONDS", "0.2")
    host = Host(
        ["history", "dispatcher", "io-worker"],
        settings=ServerSettings(port=0, shutdown_grace_seconds=2),
        task_modules=["sample_tasks"],
    )
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


@contextmanager
def manager_environment(folder: Path, **extra: str) -> Iterator[None]:
    """What a task manager's embedded system reads, for a module of tests: history in
    ``folder``, a memory queue, short polls, no FLUID_ADDRESS (so it runs embedded), and
    the tests folder importable by the cpu-bound runs' processes."""
    tests = str(Path(__file__).parent)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FLUID_DATABASE_URL", f"sqlite+aiosqlite:///{folder / 'history.db'}")
        env.setenv("FLUID_BROKER_URL", "memory://")
        env.setenv("FLUID_LEASE_WAIT_SECONDS", "0.2")
        env.delenv("FLUID_ADDRESS", raising=False)
        env.setenv(
            "PYTHONPATH", os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))
        )
        for name, value in extra.items():
            env.setenv(name, value)
        yield


GATEWAY_SERVICES = ("history", "dispatcher", "scheduler", "io-worker", "gateway")


@contextlib.asynccontextmanager
async def gateway_system(
    folder: Path,
    services: tuple[str, ...] = GATEWAY_SERVICES,
    *,
    auth_key_file: Path | None = None,
) -> AsyncIterator[tuple[Host, str]]:
    """The services (the gateway among them) in one host on free ports, with
    ``sample_tasks``, history in ``folder``; with ``auth_key_file``, auth required and the
    services calling each other with a token of every role. The host and the gateway's URL."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FLUID_DATABASE_URL", f"sqlite+aiosqlite:///{folder / 'history.db'}")
        env.setenv("FLUID_BROKER_URL", "memory://")
        env.setenv("FLUID_LEASE_WAIT_SECONDS", "0.2")
        # A worker hears of an abort on its next heartbeat (a third of the lease TTL): with
        # the default 15 s lease that is up to 5 s, as long as the dashboard tests wait.
        env.setenv("FLUID_LEASE_TTL_SECONDS", "3")
        env.setenv("FLUID_HTTP_PORT", "0")
        env.syspath_prepend(str(Path(__file__).parent))
        if auth_key_file is not None:
            env.setenv("FLUID_AUTH_KEY_FILES", str(auth_key_file))
            services_token = mint_token(load_key(auth_key_file), "services", list(Role), 300)
            env.setenv("FLUID_TOKEN", services_token)
        host = Host(
            list(services),
            settings=ServerSettings(port=0, shutdown_grace_seconds=1),
            task_modules=["sample_tasks"],
        )
        await host.start()
        try:
            (gateway,) = [service for service in host._services if service.name == "gateway"]
            yield host, str(gateway.url)  # type: ignore[attr-defined]
        finally:
            await host.stop()
