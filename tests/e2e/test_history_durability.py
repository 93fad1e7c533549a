"""No run state is lost while history, or history's database, is away.

The dispatcher keeps every state in its outbox until history committed it (see
docs/architecture.md, "History delivery"), so history starting late or its database
dropping connections mid-ingest delays the history, never thins it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from fluid.scheduler import Client, TaskState
from fluid.service.host import Host
from fluid.service.settings import ClientSettings, ServerSettings
from fluid_history.testing import PostgresSchema, postgres_schema

from history_polling import all_stored
from process_helpers import free_port


@pytest.fixture
def history_address() -> str:
    """Where history will listen: known to the dispatcher before history exists."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(autouse=True)
def _quick_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stopping worker waits for its current long poll: keep polls short.
    monkeypatch.setenv("FLUID_LEASE_WAIT_SECONDS", "0.2")


@asynccontextmanager
async def _queue_without_history(history_address: str) -> AsyncIterator[Client]:
    """Dispatcher and io-worker in one server, forwarding to history at another address."""
    port = free_port()
    clients = ClientSettings(address=f"127.0.0.1:{port}", history_address=history_address)
    queue = Host(
        ["dispatcher", "io-worker"],
        settings=ServerSettings(port=port, shutdown_grace_seconds=2),
        task_modules=["sample_tasks"],
        clients=clients,
    )
    await queue.start()
    try:
        async with Client(settings=clients) as client:
            yield client
    finally:
        await queue.stop()


@asynccontextmanager
async def _history(history_address: str) -> AsyncIterator[None]:
    port = int(history_address.rpartition(":")[2])
    history = Host(["history"], settings=ServerSettings(port=port, shutdown_grace_seconds=1))
    await history.start()
    try:
        yield
    finally:
        await history.stop()


async def _say_hi(client: Client, count: int) -> set[str]:
    queued = await asyncio.gather(*(client.queue("say_hi", name=f"n{n}") for n in range(count)))
    return {run.id for run in queued}


async def test_runs_finished_while_history_was_down_reach_it_when_it_starts(
    history_address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUID_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'history.db'}")
    async with _queue_without_history(history_address) as client:
        run_ids = await _say_hi(client, 200)
        finished = await asyncio.gather(*(client.wait(run_id, timeout=30) for run_id in run_ids))
        assert {run.state for run in finished} == {TaskState.success}

        async with _history(history_address):
            # The forwarder retries with a back-off of at most 5 s.
            await all_stored(client, "say_hi", run_ids, TaskState.success, timeout=30)


async def test_runs_survive_history_losing_its_database_connections_mid_ingest(
    history_address: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fluid.loops")
    async with postgres_schema("fluid_e2e") as schema:
        monkeypatch.setenv("FLUID_DATABASE_URL", schema.url.render_as_string(hide_password=False))
        async with _history(history_address), _queue_without_history(history_address) as client:
            cuts: list[int] = []
            ingested = asyncio.Event()
            cutter = asyncio.create_task(_cut_connections(schema, cuts, ingested, times=6))
            try:
                # Runs keep coming while the sessions are cut, so that the cuts land on
                # ingest: queued all at once, 300 runs are recorded before the first cut
                # (the client sends them in a few QueueRuns), and only history's readers
                # are left to cut.
                run_ids: set[str] = set()
                for _ in range(40):
                    run_ids |= await _say_hi(client, 50)
                    if len(cuts) >= 3:
                        break
                    await asyncio.sleep(0.05)
                await all_stored(client, "say_hi", run_ids, TaskState.success, timeout=45)
            finally:
                # Stopped, not cancelled: a cancelled query would spoil the admin session.
                ingested.set()
                await cutter
    assert cuts, "no history database session was ever cut: the test proved nothing"
    # The dispatcher saw history refuse batches (UNAVAILABLE) and sent them again.
    assert any("UNAVAILABLE" in record.getMessage() for record in caplog.records)


async def _cut_connections(
    schema: PostgresSchema, cuts: list[int], ingested: asyncio.Event, times: int
) -> None:
    """Terminate history's busy database sessions ``times`` times while it ingests."""
    while len(cuts) < times and not ingested.is_set():
        if terminated := await schema.terminate_connections(busy_only=True):
            cuts.append(terminated)
            # Let the retried batch through before the next cut, or the forwarder's
            # back-off (up to 5 s) would make this test slow rather than thorough.
            await asyncio.sleep(0.3)
        await asyncio.sleep(0.01)
