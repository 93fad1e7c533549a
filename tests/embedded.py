"""The embedded fluid system the cross-service tests run against: one in-process server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

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
