"""Fixtures of the cpu-runner tests: a real embedded system per process mode, output capture.

One system per mode serves every test of a module: starting one (history migrations,
the forkserver's imports) costs seconds, and runs of different tests do not interact.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from fluid.scheduler import Client
from fluid.service.host import Host
from fluid.service.settings import ServerSettings

if TYPE_CHECKING:
    from runner_output import OutputLines

TESTS = Path(__file__).parent
# The runner imports `cpu_tasks` by name; each run's process finds it through PYTHONPATH.
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

MODES = ["fresh", "fork"]


@pytest.fixture(scope="module", params=MODES)
def cpu_mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture(scope="module")
def runner_environment(tmp_path_factory: pytest.TempPathFactory, cpu_mode: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        database = tmp_path_factory.mktemp(f"history-{cpu_mode}") / "h.db"
        patch.setenv("FLUID_DATABASE_URL", f"sqlite+aiosqlite:///{database}")
        patch.setenv("FLUID_LEASE_TTL_SECONDS", "3")
        # A stopping worker waits for its current long poll: keep polls short in tests.
        patch.setenv("FLUID_LEASE_WAIT_SECONDS", "0.2")
        patch.setenv("FLUID_CPU_MODE", cpu_mode)
        patch.setenv("FLUID_CPU_CONCURRENCY", "4")
        patch.setenv("FLUID_CPU_KILL_GRACE_SECONDS", "0.5")
        patch.setenv(
            "PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
        )
        yield


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cpu_system(runner_environment: None) -> AsyncIterator[Host]:
    """history, dispatcher and cpu-runner in one in-process server on port 0."""
    host = Host(
        ["history", "dispatcher", "cpu-runner"],
        settings=ServerSettings(port=0, shutdown_grace_seconds=2),
        task_modules=["cpu_tasks"],
    )
    await host.start()
    yield host
    await host.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(cpu_system: Host) -> AsyncIterator[Client]:
    async with Client(cpu_system.address) as connected:
        yield connected


@pytest.fixture
def output() -> Iterator[OutputLines]:
    # Imported here: this folder joins sys.path only when this module runs.
    from runner_output import OutputLines

    handler = OutputLines()
    logger = logging.getLogger("fluid.cpu_runner.output")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
