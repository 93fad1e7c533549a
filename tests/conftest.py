"""Shared fixtures of the cross-service tests: an embedded fluid system on port 0."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fluid.scheduler import Client
from fluid.service.host import Host
from fluid.service.settings import ServerSettings

TESTS = Path(__file__).parent
# The workers import `sample_tasks` by name, as users' workers import theirs.
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from servers import redis_url, wipe_redis  # noqa: E402  (importable once tests/ is on the path)


@pytest.fixture(params=["memory", "redis"])
def broker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The dispatcher's queue store: in memory, and on a real Redis in its own namespace."""
    if request.param == "memory":
        monkeypatch.setenv("FLUID_BROKER_URL", "memory://")
        yield "memory://"
        return
    url = redis_url()
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("FLUID_BROKER_URL", url)
    monkeypatch.setenv("FLUID_BROKER_NAMESPACE", namespace)
    yield url
    wipe_redis(url, namespace)


@pytest.fixture
async def system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker: str
) -> AsyncIterator[Host]:
    """Every installed service in one in-process server, history in a temp SQLite file."""
    monkeypatch.setenv("FLUID_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'history.db'}")
    monkeypatch.setenv("FLUID_LEASE_TTL_SECONDS", "3")
    # A stopping worker waits for its current long poll: keep polls short in tests.
    monkeypatch.setenv("FLUID_LEASE_WAIT_SECONDS", "0.2")
    host = Host(
        ["history", "dispatcher", "io-worker"],
        settings=ServerSettings(port=0, shutdown_grace_seconds=2),
        task_modules=["sample_tasks"],
    )
    await host.start()
    yield host
    await host.stop()


@pytest.fixture
async def client(system: Host) -> AsyncIterator[Client]:
    async with Client(system.address) as connected:
        yield connected
