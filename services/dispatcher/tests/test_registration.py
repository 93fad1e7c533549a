"""Registration ownership: a task keeps the definition of its newest worker generation,
and every change of a definition is logged with both versions."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import timestamp_pb2

from fluid.scheduler import wire
from fluid.scheduler.definition import TaskDefinition
from fluid.scheduler.errors import InvalidArgumentError
from fluid.scheduler.models import RunRequest, WorkerKind
from fluid.scheduler.v1 import dispatcher_pb2
from fluid_dispatcher.api.servicer import DispatcherServicer
from fluid_dispatcher.domain.dispatcher import Dispatcher
from fluid_dispatcher.domain.door import STARTED_SKEW
from fluid_dispatcher.store.memory import MemoryQueueStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OLD = TaskDefinition(name="add", timeout_seconds=60, max_concurrency=2)
NEW = TaskDefinition(name="add", timeout_seconds=5, max_concurrency=2, cpu_bound=False)
NEWER_SCHEMA = TaskDefinition(
    name="add",
    timeout_seconds=5,
    max_concurrency=2,
    params_schema={"type": "object", "properties": {"a": {"type": "integer"}}},
)


@pytest.fixture
def dispatcher() -> Dispatcher:
    return Dispatcher(MemoryQueueStore(), clock=lambda: T0 + timedelta(hours=1))


async def _register(
    dispatcher: Dispatcher, worker_id: str, definition: TaskDefinition, started: datetime | None
) -> None:
    await dispatcher.register_worker(worker_id, WorkerKind.io, [definition], 1, started)


async def _definition(dispatcher: Dispatcher) -> TaskDefinition:
    (info,) = await dispatcher.list_tasks()
    return info.definition


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_the_same_definition_again_logs_no_warning(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    await _register(dispatcher, "w1", NEW, T0)
    await _register(dispatcher, "w1", NEW, T0)
    await _register(dispatcher, "w2", NEW, T0 + timedelta(minutes=1))
    await _register(dispatcher, "w0", NEW, None)
    assert _warnings(caplog) == []
    assert await _definition(dispatcher) == NEW


async def test_a_newer_generation_takes_over_and_both_versions_are_logged(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    await _register(dispatcher, "old-1", OLD, T0)
    await _register(dispatcher, "new-1", NEW, T0 + timedelta(minutes=1))

    assert await _definition(dispatcher) == NEW
    (warning,) = _warnings(caplog)
    assert "task add: worker new-1 (started 2026-01-01T00:01:00+00:00)" in warning
    assert "replaced the definition of generation 2026-01-01T00:00:00+00:00" in warning
    assert "timeout_seconds: 60 -> 5" in warning
    assert "max_concurrency" not in warning, "only the fields that changed"


async def test_an_older_generation_does_not_revert_the_definition(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    await _register(dispatcher, "new-1", NEWER_SCHEMA, T0 + timedelta(minutes=1))
    # An old worker restarting its registration loop, and one that does not say when
    # it started (a release before generations): neither reverts the definition.
    await _register(dispatcher, "old-1", OLD, T0)
    await _register(dispatcher, "ancient", OLD, None)

    assert await _definition(dispatcher) == NEWER_SCHEMA
    first, second = _warnings(caplog)
    assert "worker old-1 (started 2026-01-01T00:00:00+00:00) registers another definition" in first
    assert "kept the definition of generation 2026-01-01T00:01:00+00:00 (newer)" in first
    assert "params_schema: {" in first and "timeout_seconds: 5 -> 60" in first
    assert "worker ancient (started unknown)" in second
    # The older workers still lease the task's runs: queue one, an old worker gets it.
    run, _ = await dispatcher.queue_run(RunRequest("add", {"a": 1}))
    leased = await dispatcher.lease_runs("old-1", 1, timedelta(0))
    assert [leased_run.id for leased_run, _ in leased] == [run.id]


async def test_a_start_time_in_the_future_is_refused(dispatcher: Dispatcher) -> None:
    now = dispatcher.clock()
    await _register(dispatcher, "w1", NEW, now + STARTED_SKEW)
    with pytest.raises(InvalidArgumentError, match=r"started: .* is in the future"):
        await _register(dispatcher, "w2", OLD, now + STARTED_SKEW + timedelta(seconds=1))
    assert await _definition(dispatcher) == NEW


class _Context:
    """The servicer's context, unused by RegisterWorker."""


async def test_register_worker_reads_started_from_the_request(dispatcher: Dispatcher) -> None:
    servicer = DispatcherServicer(dispatcher)
    newer = wire.timestamp(T0 + timedelta(minutes=1))
    for started, definition in ((newer, NEW), (wire.timestamp(T0), OLD), (None, OLD)):
        request = dispatcher_pb2.RegisterWorkerRequest(
            worker_id="w",
            kind=wire.worker_kind_to_pb(WorkerKind.io),
            tasks=[wire.definition_to_pb(definition)],
            concurrency=1,
            started=started,
        )
        await servicer.RegisterWorker(request, _Context())  # type: ignore[arg-type]
    assert await _definition(dispatcher) == NEW


async def test_a_started_that_is_no_time_is_invalid(dispatcher: Dispatcher) -> None:
    servicer = DispatcherServicer(dispatcher)
    request = dispatcher_pb2.RegisterWorkerRequest(
        worker_id="w",
        kind=wire.worker_kind_to_pb(WorkerKind.io),
        tasks=[wire.definition_to_pb(NEW)],
        concurrency=1,
        started=timestamp_pb2.Timestamp(seconds=2**62),
    )
    with pytest.raises(InvalidArgumentError, match="started"):
        await servicer.RegisterWorker(request, _Context())  # type: ignore[arg-type]
