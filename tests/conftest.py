"""Shared fixtures of the cross-service tests: an embedded fluid system on port 0."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fluid.scheduler import Client
from fluid.service.host import Host

TESTS = Path(__file__).parent
# The workers import `sample_tasks` by name, as users' workers import theirs.
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from embedded import embedded_system  # noqa: E402  (importable once tests/ is on the path)
from servers import redis_url, wipe_redis  # noqa: E402


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
    """The embedded system on ``broker``, history in a temp SQLite file."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    async with embedded_system(monkeypatch, database_url=database_url) as host:
        yield host


@pytest.fixture
async def client(system: Host) -> AsyncIterator[Client]:
    async with Client(system.address) as connected:
        yield connected
