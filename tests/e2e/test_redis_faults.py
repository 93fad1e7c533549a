"""Redis faults, on a redis-server of the test's own (never the shared one): a restart
mid-flight, and a Redis out of memory. Callers get a precise status meanwhile, and once
Redis is back every run reaches its end and history, with no process restarted."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from fluid.scheduler import Client, TaskState, UnavailableError
from fluid.scheduler.errors import ResourceExhaustedError
from fluid.service.host import Host

from embedded import embedded_system
from history_polling import all_stored
from process_helpers import free_port


class PrivateRedis:
    """A redis-server of this test's own that survives a restart with its data (AOF)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *options: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (make services installs it)")
        self.process = subprocess.Popen(
            [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.workdir),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                *options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        try:
            for _ in range(200):
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        finally:
            client.close()
        pytest.fail(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def system_on_private_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_redis: PrivateRedis
) -> AsyncIterator[Host]:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    async with embedded_system(
        monkeypatch, database_url=database_url, broker_url=private_redis.url
    ) as host:
        yield host


async def test_a_redis_restart_loses_no_run_and_stops_nothing_for_good(
    system_on_private_redis: Host, private_redis: PrivateRedis
) -> None:
    async with Client(system_on_private_redis.address) as client:
        before = await client.queue_many("say_hi", [{"name": f"n{i}"} for i in range(100)])

        private_redis.stop()
        with pytest.raises(UnavailableError) as raised:
            await client.queue("say_hi", name="during")
        # The caller learns the store is away, not where it lives.
        assert str(private_redis.port) not in str(raised.value)
        with pytest.raises(UnavailableError):
            await client.queue_status()
        await asyncio.sleep(2)  # long enough for every loop to meet the outage
        private_redis.start()

        after = await client.queue_many("say_hi", [{"name": f"m{i}"} for i in range(100)])
        expected = {run.id for run in [*before, *after]}
        await all_stored(client, "say_hi", expected, TaskState.success, timeout=90)
        status = await client.queue_status()
        assert status.dead_letters == 0


async def test_a_full_redis_refuses_new_runs_with_resource_exhausted_until_it_has_room(
    system_on_private_redis: Host, private_redis: PrivateRedis
) -> None:
    admin = redis.Redis.from_url(private_redis.url)
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", str(used + 2 * 1024 * 1024))
    try:
        async with Client(system_on_private_redis.address) as client:
            queued = []
            with pytest.raises(ResourceExhaustedError) as raised:
                for _ in range(2000):  # bounded: 2000 x 8 KB is far past 2 MB
                    queued.append(await client.queue("echo", text="x", padding="p" * 8192))
            assert "full" in str(raised.value) and str(private_redis.port) not in str(raised.value)
            assert queued, "refused before any run was queued"

            admin.config_set("maxmemory", "0")
            after = await client.queue("echo", text="room again")
            expected = {run.id for run in [*queued, after]}
            await all_stored(client, "echo", expected, TaskState.success, timeout=90)
    finally:
        admin.close()
