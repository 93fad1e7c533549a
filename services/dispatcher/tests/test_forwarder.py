"""The history forwarder against a real gRPC history that refuses what a test tells it to:
one refused snapshot becomes a dead letter, the rest reach history, nothing blocks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from fluid.scheduler.models import TaskPriority, TaskState
from fluid.scheduler.run import Run
from fluid.scheduler.v1 import history_pb2, history_pb2_grpc
from fluid.service.loops import LoopHealth
from fluid_dispatcher.domain.dispatcher import Dispatcher
from fluid_dispatcher.history_forwarder import LOOP_NAME, HistoryForwarder
from fluid_dispatcher.store.memory import MemoryQueueStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PROMPTLY = 10.0


@dataclass
class RefusingHistory(history_pb2_grpc.HistoryServiceServicer):
    """Stores what it is sent, except: runs named in ``refuse`` (listed as refused), any
    request holding a run of ``poison`` (refused whole, as a too-large request is) or of
    ``crash`` (INTERNAL), and the first ``down_for`` calls (UNAVAILABLE, as a restarting
    history is)."""

    refuse: set[str] = field(default_factory=set)
    poison: set[str] = field(default_factory=set)
    # Runs that make history fail with INTERNAL (a bug a snapshot triggers).
    crash: set[str] = field(default_factory=set)
    down_for: int = 0
    stored: dict[str, int] = field(default_factory=dict)
    calls: int = 0

    async def RecordRuns(
        self, request: history_pb2.RecordRunsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> history_pb2.RecordRunsResponse:
        self.calls += 1
        if self.calls <= self.down_for:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "history is restarting")
        if any(run.id in self.poison for run in request.runs):
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "request too large")
        if any(run.id in self.crash for run in request.runs):
            await context.abort(grpc.StatusCode.INTERNAL, "internal error in RecordRuns")
        refused = []
        for run in request.runs:
            if run.id in self.refuse:
                refused.append(
                    history_pb2.RefusedRun(run_id=run.id, version=run.version, reason="no NUL")
                )
            else:
                self.stored[run.id] = run.version
        return history_pb2.RecordRunsResponse(applied=len(self.stored), refused=refused)


@pytest.fixture
def history() -> RefusingHistory:
    return RefusingHistory()  # type: ignore[abstract]  # serves RecordRuns only


@pytest.fixture
async def history_address(history: RefusingHistory) -> AsyncIterator[str]:
    server = grpc.aio.server()
    history_pb2_grpc.add_HistoryServiceServicer_to_server(history, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


async def _add(store: MemoryQueueStore, *run_ids: str) -> None:
    for run_id in run_ids:
        await store.add_run(
            Run(
                id=run_id,
                task="add",
                priority=TaskPriority.medium,
                state=TaskState.queued,
                queued=T0,
                version=1,
            )
        )


async def _drained(store: MemoryQueueStore) -> None:
    async with asyncio.timeout(PROMPTLY):
        while await store.outbox_size():  # noqa: ASYNC110 - acks happen in the forwarder
            await asyncio.sleep(0.01)


@pytest.fixture
async def forwarding(history_address: str) -> AsyncIterator[tuple[MemoryQueueStore, LoopHealth]]:
    store = MemoryQueueStore()
    health = LoopHealth()
    forwarder = HistoryForwarder(
        store, history_address, Dispatcher(store).masked, batch_size=50, linger=0, health=health
    )
    loop = asyncio.create_task(forwarder.run())
    yield store, health
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


async def test_a_snapshot_history_refuses_becomes_a_dead_letter_and_the_rest_are_stored(
    history: RefusingHistory, forwarding: tuple[MemoryQueueStore, LoopHealth]
) -> None:
    store, health = forwarding
    history.refuse = {"run-3"}

    await _add(store, *(f"run-{index}" for index in range(10)))
    await _drained(store)

    assert set(history.stored) == {f"run-{index}" for index in range(10)} - {"run-3"}
    (letter,) = await store.dead_letters(10)
    assert (letter.run_id, letter.reason, letter.state) == ("run-3", "no NUL", TaskState.queued)
    assert health.degraded() == ()


async def test_a_batch_refused_whole_is_split_until_the_culprit_stands_alone(
    history: RefusingHistory, forwarding: tuple[MemoryQueueStore, LoopHealth]
) -> None:
    store, _ = forwarding
    history.poison = {"run-17"}

    await _add(store, *(f"run-{index}" for index in range(40)))
    await _drained(store)

    assert set(history.stored) == {f"run-{index}" for index in range(40)} - {"run-17"}
    (letter,) = await store.dead_letters(10)
    assert letter.run_id == "run-17"
    assert letter.reason.startswith("RESOURCE_EXHAUSTED")

    # Sent again once history takes it, the dead letter reaches history.
    history.poison = set()
    assert await store.retry_dead_letters(None) == 1
    await _drained(store)
    assert "run-17" in history.stored
    assert await store.dead_letter_summary() == (0, None)


async def test_a_snapshot_history_keeps_failing_on_becomes_a_dead_letter_after_a_few_tries(
    history: RefusingHistory, forwarding: tuple[MemoryQueueStore, LoopHealth]
) -> None:
    store, _ = forwarding
    history.crash = {"run-2"}

    await _add(store, *(f"run-{index}" for index in range(6)))
    await _drained(store)

    assert set(history.stored) == {f"run-{index}" for index in range(6)} - {"run-2"}
    (letter,) = await store.dead_letters(10)
    assert letter.run_id == "run-2" and letter.reason.startswith("INTERNAL")


async def test_history_down_for_a_while_loses_nothing_and_makes_no_dead_letters(
    history: RefusingHistory, forwarding: tuple[MemoryQueueStore, LoopHealth]
) -> None:
    store, health = forwarding
    history.down_for = 3

    await _add(store, "run-1", "run-2")
    await _drained(store)

    assert set(history.stored) == {"run-1", "run-2"}
    assert await store.dead_letter_summary() == (0, None)
    assert health.degraded() == ()


async def test_a_failing_store_degrades_the_loop_which_recovers(history_address: str) -> None:
    store = MemoryQueueStore()
    health = LoopHealth()
    failures = 3
    real_read = store.read_outbox

    async def flaky_read(limit: int, wait: float = 0.0) -> list[Any]:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("the queue store went away")
        return await real_read(limit, wait)

    store.read_outbox = flaky_read  # type: ignore[method-assign]
    forwarder = HistoryForwarder(
        store, history_address, Dispatcher(store).masked, linger=0, health=health
    )
    loop = asyncio.create_task(forwarder.run())
    try:
        async with asyncio.timeout(PROMPTLY):
            while not health.degraded():  # noqa: ASYNC110 - the loop reports on its own
                await asyncio.sleep(0.01)
        (degraded,) = health.degraded()
        assert degraded.name == LOOP_NAME and "went away" in degraded.error
        await _add(store, "run-1")
        await _drained(store)
        assert health.degraded() == ()
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop
