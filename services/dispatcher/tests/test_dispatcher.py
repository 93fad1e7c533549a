"""The dispatcher's use cases over the in-memory store, with a clock the tests move by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from fluid.scheduler.definition import TaskDefinition
from fluid.scheduler.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
)
from fluid.scheduler.limits import limits
from fluid.scheduler.models import (
    HeartbeatReply,
    RetryPolicy,
    RunError,
    RunReport,
    RunRequest,
    TaskPriority,
    TaskState,
    WorkerKind,
)
from fluid.scheduler.run import Run
from fluid_dispatcher.domain.dispatcher import Dispatcher, DispatcherConfig
from fluid_dispatcher.domain.ports import WorkTicket
from fluid_dispatcher.domain.records import Lease, TaskRecord
from fluid_dispatcher.domain.transitions import INTERRUPTION_RETRY
from fluid_dispatcher.store.memory import MemoryQueueStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=10)
IO_WORKER = "io-1"
CPU_WORKER = "cpu-1"
PROMPTLY = 5.0
"""Seconds a wait that should end at once may take before the test fails (a safety net)."""


class AddParams(BaseModel):
    a: int
    b: int = 0


ADD = TaskDefinition(name="add", params_schema=AddParams.model_json_schema())


class FakeClock:
    """The dispatcher's clock: stands still until a test advances it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class SignallingStore(MemoryQueueStore):
    """A memory store that tells the test when a long poll starts waiting for work."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = asyncio.Event()

    async def wait_for_work(self, ticket: WorkTicket, timeout: float) -> None:
        self.waiting.set()
        await super().wait_for_work(ticket, timeout)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def store() -> AsyncIterator[SignallingStore]:
    queue_store = SignallingStore()
    try:
        yield queue_store
    finally:
        await queue_store.close()


@pytest.fixture
def dispatcher(store: SignallingStore, clock: FakeClock) -> Dispatcher:
    return Dispatcher(store, DispatcherConfig(lease_ttl=TTL), clock=clock)


async def register(
    dispatcher: Dispatcher,
    *definitions: TaskDefinition,
    worker_id: str = IO_WORKER,
    kind: WorkerKind = WorkerKind.io,
) -> None:
    await dispatcher.register_worker(worker_id, kind, definitions or (ADD,), concurrency=4)


async def queue(
    dispatcher: Dispatcher, task: str = "add", params: dict[str, Any] | None = None, **fields: Any
) -> Run:
    run, created = await dispatcher.queue_run(
        RunRequest(task=task, params={"a": 1} if params is None else params, **fields)
    )
    assert created
    return run


async def lease_one(dispatcher: Dispatcher, worker_id: str = IO_WORKER) -> tuple[Run, Lease]:
    leased = await dispatcher.lease_runs(worker_id, 1, timedelta(0))
    assert len(leased) == 1, f"expected one run to lease, got {leased}"
    return leased[0]


async def lease_ids(dispatcher: Dispatcher, worker_id: str = IO_WORKER) -> list[str]:
    return [run.id for run, _ in await dispatcher.lease_runs(worker_id, 10, timedelta(0))]


def failed(error_type: str = "ValueError") -> RunReport:
    return RunReport(TaskState.failure, error=RunError(error_type, "boom", "Traceback ..."))


# -- queueing ------------------------------------------------------------------------


async def test_queue_run_stores_a_queued_run(dispatcher: Dispatcher, clock: FakeClock) -> None:
    await register(dispatcher, ADD)

    run = await queue(dispatcher, params={"a": 1, "b": 2}, priority=TaskPriority.high)

    assert run.task == "add"
    assert (run.state, run.params, run.priority) == (
        TaskState.queued,
        {"a": 1, "b": 2},
        TaskPriority.high,
    )
    assert (run.queued, run.attempt, run.version) == (clock.now, 0, 1)
    assert run.root_run_id == run.id and run.from_run_id == ""
    assert await dispatcher.get_run(run.id) == run


async def test_queue_run_of_an_unknown_task_is_not_found(dispatcher: Dispatcher) -> None:
    await register(dispatcher, ADD)

    with pytest.raises(NotFoundError, match="missing"):
        await dispatcher.queue_run(RunRequest(task="missing", params={}))


async def test_queue_run_names_the_params_failing_the_schema(dispatcher: Dispatcher) -> None:
    await register(dispatcher, ADD)

    with pytest.raises(InvalidArgumentError, match=r"params\.a") as wrong_type:
        await dispatcher.queue_run(RunRequest(task="add", params={"a": "one"}))
    with pytest.raises(InvalidArgumentError, match=r"params\.a: field required"):
        await dispatcher.queue_run(RunRequest(task="add", params={"b": 2}))

    assert "add" in str(wrong_type.value)
    assert await dispatcher.store.read_outbox(10) == []


@pytest.mark.parametrize("run_id", ["has space", "a/b", "x" * 129])
async def test_queue_run_refuses_a_malformed_run_id(dispatcher: Dispatcher, run_id: str) -> None:
    await register(dispatcher, ADD)

    with pytest.raises(InvalidArgumentError, match="run_id"):
        await dispatcher.queue_run(RunRequest(task="add", params={"a": 1}, run_id=run_id))


async def test_queue_run_with_a_known_run_id_returns_the_existing_run(
    dispatcher: Dispatcher,
) -> None:
    await register(dispatcher, ADD)
    first = await queue(dispatcher, run_id="order-42:charge")

    again, created = await dispatcher.queue_run(
        RunRequest(task="add", params={"a": 2}, run_id="order-42:charge")
    )

    assert (again, created) == (first, False)
    assert first.id == "order-42:charge"


async def test_queue_run_with_a_known_idempotency_key_returns_the_existing_run(
    dispatcher: Dispatcher,
) -> None:
    await register(dispatcher, ADD)
    first = await queue(dispatcher, idempotency_key="nightly-2026-01-01")

    again, created = await dispatcher.queue_run(
        RunRequest(task="add", params={"a": 2}, idempotency_key="nightly-2026-01-01")
    )

    assert (again, created) == (first, False)
    assert await lease_ids(dispatcher) == [first.id]


async def test_a_child_run_records_its_parent_and_root(dispatcher: Dispatcher) -> None:
    await register(dispatcher, ADD)
    parent = await queue(dispatcher)

    child = await queue(dispatcher, from_run_id=parent.id)
    grandchild = await queue(dispatcher, from_run_id=child.id)

    assert (parent.from_run_id, parent.root_run_id) == ("", parent.id)
    assert (child.from_run_id, child.root_run_id) == (parent.id, parent.id)
    assert (grandchild.from_run_id, grandchild.root_run_id) == (child.id, parent.id)


# -- leasing and reports -------------------------------------------------------------


async def test_a_successful_report_stores_the_result(
    dispatcher: Dispatcher, clock: FakeClock
) -> None:
    await register(dispatcher, ADD)
    queued = await queue(dispatcher)

    run, lease = await lease_one(dispatcher)
    assert (run.id, run.state, run.start, run.worker_id) == (
        queued.id,
        TaskState.running,
        T0,
        IO_WORKER,
    )
    assert (lease.worker_id, lease.attempt, lease.deadline) == (IO_WORKER, 0, T0 + TTL)

    clock.advance(3)
    reported = await dispatcher.report(
        IO_WORKER, run.id, 0, RunReport(TaskState.success, result={"sum": 3})
    )

    assert reported is True
    done = await dispatcher.get_run(run.id)
    assert (done.state, done.result, done.start, done.end) == (
        TaskState.success,
        {"sum": 3},
        T0,
        clock.now,
    )
    assert done.duration == 3.0
    assert dict(await dispatcher.store.running_counts()) == {}


async def test_a_failed_run_is_retried_under_its_policy(
    dispatcher: Dispatcher, clock: FakeClock
) -> None:
    definition = TaskDefinition(name="add", retry=RetryPolicy(max_attempts=2, wait=1))
    await register(dispatcher, definition)
    run_id = (await queue(dispatcher)).id

    for attempt in (0, 1):
        run, lease = await lease_one(dispatcher)
        assert (run.attempt, lease.attempt) == (attempt, attempt)
        clock.advance(2)
        assert await dispatcher.report(IO_WORKER, run_id, attempt, failed()) is True

        retry = await dispatcher.get_run(run_id)
        assert (retry.state, retry.attempt) == (TaskState.queued, attempt + 1)
        assert retry.execute_after == clock.now + timedelta(seconds=1)
        assert retry.error is not None and retry.error.type == "ValueError"
        assert (retry.start, retry.end, retry.worker_id) == (None, None, "")
        # Not before its back-off is over.
        assert await lease_ids(dispatcher) == []
        clock.advance(1)

    run, lease = await lease_one(dispatcher)
    assert lease.attempt == 2
    assert await dispatcher.report(IO_WORKER, run_id, 2, failed()) is True

    final = await dispatcher.get_run(run_id)
    assert (final.state, final.attempt, final.end) == (TaskState.failure, 2, clock.now)
    assert final.error == RunError("ValueError", "boom", "Traceback ...")
    assert await lease_ids(dispatcher) == []


async def test_a_failure_the_policy_does_not_cover_is_not_retried(
    dispatcher: Dispatcher,
) -> None:
    policy = RetryPolicy(max_attempts=5, exceptions=("ConnectionError",))
    await register(dispatcher, TaskDefinition(name="add", retry=policy))
    run_id = (await queue(dispatcher)).id
    await lease_one(dispatcher)

    await dispatcher.report(IO_WORKER, run_id, 0, failed("KeyError"))

    final = await dispatcher.get_run(run_id)
    assert (final.state, final.attempt) == (TaskState.failure, 0)


async def test_an_aborted_report_is_never_retried(dispatcher: Dispatcher) -> None:
    await register(dispatcher, TaskDefinition(name="add", retry=RetryPolicy(max_attempts=5)))
    run_id = (await queue(dispatcher)).id
    await lease_one(dispatcher)

    report = RunReport(TaskState.aborted, reason="nothing to do")
    assert await dispatcher.report(IO_WORKER, run_id, 0, report) is True

    run = await dispatcher.get_run(run_id)
    assert (run.state, run.reason, run.attempt) == (TaskState.aborted, "nothing to do", 0)
    assert await lease_ids(dispatcher) == []


async def test_a_report_from_a_worker_without_the_lease_is_ignored(
    dispatcher: Dispatcher,
) -> None:
    await register(dispatcher, ADD)
    await register(dispatcher, ADD, worker_id="io-2")
    run_id = (await queue(dispatcher)).id
    await lease_one(dispatcher)
    success = RunReport(TaskState.success, result=1)

    assert await dispatcher.report("io-2", run_id, 0, success) is False
    assert await dispatcher.report(IO_WORKER, run_id, 1, success) is False  # stale attempt
    assert (await dispatcher.get_run(run_id)).state is TaskState.running

    assert await dispatcher.report(IO_WORKER, run_id, 0, success) is True
    # Once finished, a second report changes nothing.
    assert await dispatcher.report(IO_WORKER, run_id, 0, failed()) is False
    assert (await dispatcher.get_run(run_id)).state is TaskState.success


async def test_a_report_in_a_state_that_does_not_end_a_run_fails_only_that_run(
    dispatcher: Dispatcher,
) -> None:
    await register(dispatcher, ADD)
    bad, good = (await queue(dispatcher)).id, (await queue(dispatcher)).id
    await dispatcher.lease_runs(IO_WORKER, 2, timedelta(0))

    reply = await dispatcher.report_all(
        IO_WORKER,
        [(bad, 0, RunReport(TaskState.queued)), (good, 0, RunReport(TaskState.success))],
    )

    assert reply.ignored == []
    assert [(run_id, "reports[0].state" in why) for run_id, why in reply.rejected] == [(bad, True)]
    failed_run = await dispatcher.get_run(bad)
    assert failed_run.state is TaskState.failure
    assert failed_run.error is not None and failed_run.error.type == "ReportRejectedError"
    assert (await dispatcher.get_run(good)).state is TaskState.success


async def test_a_too_large_result_fails_its_run_and_keeps_the_others(
    dispatcher: Dispatcher,
) -> None:
    await register(dispatcher, ADD)
    big, small = (await queue(dispatcher)).id, (await queue(dispatcher)).id
    await dispatcher.lease_runs(IO_WORKER, 2, timedelta(0))
    huge = "x" * (limits().result_bytes + 1)

    reply = await dispatcher.report_all(
        IO_WORKER,
        [
            (big, 0, RunReport(TaskState.success, result=huge)),
            (small, 0, RunReport(TaskState.success, result="\x00ok")),
        ],
    )

    assert [run_id for run_id, _ in reply.rejected] == [big]
    too_large = await dispatcher.get_run(big)
    assert too_large.state is TaskState.failure and too_large.result is None
    assert too_large.error is not None and too_large.error.type == "ResultTooLargeError"
    # A NUL in a result is the task's own output: kept, made storable everywhere.
    assert (await dispatcher.get_run(small)).result == "\ufffdok"


# -- leases, heartbeats and expiry ---------------------------------------------------------


async def test_an_expired_lease_is_retried_then_ends_interrupted(
    dispatcher: Dispatcher, clock: FakeClock
) -> None:
    await register(dispatcher, ADD)
    run_id = (await queue(dispatcher)).id
    retries = INTERRUPTION_RETRY.max_attempts
    assert retries is not None

    for attempt in range(retries):
        _, lease = await lease_one(dispatcher)
        assert lease.attempt == attempt
        clock.advance(TTL.total_seconds() + 1)
        assert await dispatcher.expire_leases() == 1

        retry = await dispatcher.get_run(run_id)
        assert (retry.state, retry.attempt) == (TaskState.queued, attempt + 1)
        assert "lease expired" in retry.reason
        assert retry.execute_after == clock.now + timedelta(
            seconds=INTERRUPTION_RETRY.delay(attempt + 1)
        )
        assert dict(await dispatcher.store.running_counts()) == {}
        clock.now = retry.execute_after

    await lease_one(dispatcher)
    clock.advance(TTL.total_seconds() + 1)
    assert await dispatcher.expire_leases() == 1

    final = await dispatcher.get_run(run_id)
    assert (final.state, final.attempt, final.end) == (TaskState.interrupted, retries, clock.now)
    assert "lease expired" in final.reason
    assert await dispatcher.expire_leases() == 0
    # Only the end is announced to a worker of the task, not the retries before it.
    assert await dispatcher.take_settled(IO_WORKER) == [final]


async def test_a_late_report_after_expiry_is_ignored(
    dispatcher: Dispatcher, clock: FakeClock
) -> None:
    await register(dispatcher, ADD)
    run_id = (await queue(dispatcher)).id
    await lease_one(dispatcher)
    clock.advance(TTL.total_seconds() + 1)
    await dispatcher.expire_leases()

    assert await dispatcher.report(IO_WORKER, run_id, 0, RunReport(TaskState.success)) is False
    assert (await dispatcher.get_run(run_id)).state is TaskState.queued


async def test_heartbeats_keep_a_lease_alive(dispatcher: Dispatcher, clock: FakeClock) -> None:
    await register(dispatcher, ADD)
    run_id = (await queue(dispatcher)).id
    await lease_one(dispatcher)

    for _ in range(3):
        clock.advance(TTL.total_seconds() - 1)
        assert await dispatcher.heartbeat(IO_WORKER, [run_id]) == HeartbeatReply()
        assert await dispatcher.expire_leases() == 0

    assert (await dispatcher.get_run(run_id)).state is TaskState.running
    # A heartbeat for a run the worker does not hold reports it lost.
    assert await dispatcher.heartbeat(IO_WORKER, ["missing"]) == HeartbeatReply(lost=["missing"])


async def test_a_run_past_its_timeout_fails_when_its_lease_expires(
    dispatcher: Dispatcher, clock: FakeClock
) -> None:
    await register(dispatcher, TaskDefinition(name="add", timeout_seconds=5))
    run_id = (await queue(dispatcher)).id
    await lease_one(dispatcher)

    # Heartbeats cannot keep the lease beyond start + timeout + lease_ttl.
    clock.advance(9)
    await dispatcher.heartbeat(IO_WORKER, [run_id])
    clock.advance(5)  # 14 s after start: still within timeout + lease_ttl (15 s)
    assert await dispatcher.expire_leases() == 0
    clock.advance(2)  # 16 s: the heartbeat's 10 s would have lasted until 19 s
    assert await dispatcher.expire_leases() == 1

    run = await dispatcher.get_run(run_id)
    assert (run.state, run.end) == (TaskState.failure, clock.now)
    assert run.error is not None and run.error.type == "TimeoutError"
    assert run.error.message == "task add timed out after 5s: its worker did not stop it"


async def test_a_worker_lost_before_the_timeout_interrupts_the_run(
    dispatcher: Dispatcher, clock: FakeClock
) -> None:
    # The timeout is shorter than the lease: by the time the lease expires the run is
    # past its timeout, but its worker vanished before, so it never failed to stop it.
    await register(dispatcher, TaskDefinition(name="add", timeout_seconds=5))
    run_id = (await queue(dispatcher)).id
    await lease_one(dispatcher)
    clock.advance(3)
    await dispatcher.heartbeat(IO_WORKER, [run_id])  # last sign of life, before the timeout

    clock.advance(TTL.total_seconds() + 1)
    assert await dispatcher.expire_leases() == 1

    run = await dispatcher.get_run(run_id)
    assert (run.state, run.attempt, run.error) == (TaskState.queued, 1, None)
    assert "lease expired" in run.reason


async def test_heartbeat_of_an_unregistered_worker_fails(dispatcher: Dispatcher) -> None:
    with pytest.raises(FailedPreconditionError):
        await dispatcher.heartbeat("ghost", [])


# -- aborts and releases --------------------------------------------------------------


async def test_aborting_a_queued_run_ends_it_at_once(
    dispatcher: Dispatcher, clock: FakeClock
) -> None:
    await register(dispatcher, ADD)
    run_id = (await queue(dispatcher)).id
    clock.advance(2)

    aborted = await dispatcher.abort_run(run_id, "not needed")

    assert (aborted.state, aborted.reason, aborted.end) == (
        TaskState.aborted,
        "not needed",
        clock.now,
    )
    assert await dispatcher.get_run(run_id) == aborted
    assert await lease_ids(dispatcher) == []
    assert await dispatcher.take_settled(IO_WORKER) == [aborted]
    assert await dispatcher.take_settled(IO_WORKER) == []


async def test_aborting_a_running_run_reaches_its_worker(dispatcher: Dispatcher) -> None:
    await register(dispatcher, TaskDefinition(name="add", retry=RetryPolicy(max_attempts=5)))
    run_id = (await queue(dispatcher)).id
    await lease_one(dispatcher)

    current = await dispatcher.abort_run(run_id, "operator stop")

    assert current.state is TaskState.running
    assert await dispatcher.heartbeat(IO_WORKER, [run_id]) == HeartbeatReply(
        aborts={run_id: "operator stop"}
    )
    # The worker cancels the task; the cancellation it reports is not a failure.
    assert await dispatcher.report(IO_WORKER, run_id, 0, failed("CancelledError")) is True
    run = await dispatcher.get_run(run_id)
    assert (run.state, run.reason, run.attempt) == (TaskState.aborted, "operator stop", 0)
    assert await lease_ids(dispatcher) == []


async def test_an_aborted_run_whose_worker_vanished_ends_aborted(
    dispatcher: Dispatcher, clock: FakeClock
) -> None:
    await register(dispatcher, ADD)
    run_id = (await queue(dispatcher)).id
    await lease_one(dispatcher)
    await dispatcher.abort_run(run_id, "operator stop")

    clock.advance(TTL.total_seconds() + 1)
    assert await dispatcher.expire_leases() == 1

    run = await dispatcher.get_run(run_id)
    assert (run.state, run.reason) == (TaskState.aborted, "operator stop")


async def test_abort_of_an_unknown_run_is_not_found(dispatcher: Dispatcher) -> None:
    with pytest.raises(NotFoundError):
        await dispatcher.abort_run("missing", "stop")


async def test_released_runs_are_queued_again_with_the_same_attempt(
    dispatcher: Dispatcher,
) -> None:
    await register(dispatcher, TaskDefinition(name="add", retry=RetryPolicy(max_attempts=1)))
    await register(dispatcher, ADD, worker_id="io-2")
    run_id = (await queue(dispatcher)).id
    await lease_one(dispatcher)

    assert await dispatcher.release_runs("io-2", [run_id]) == []
    assert await dispatcher.release_runs(IO_WORKER, [run_id, "missing"]) == [run_id]

    run = await dispatcher.get_run(run_id)
    assert (run.state, run.attempt, run.worker_id, run.start) == (TaskState.queued, 0, "", None)
    assert dict(await dispatcher.store.running_counts()) == {}
    # Ready again at once, for any worker.
    again, lease = await lease_one(dispatcher, "io-2")
    assert (again.id, lease.attempt) == (run_id, 0)


async def test_a_released_run_with_an_abort_pending_ends_aborted(
    dispatcher: Dispatcher, clock: FakeClock
) -> None:
    await register(dispatcher, ADD)
    run_id = (await queue(dispatcher)).id
    await lease_one(dispatcher)
    await dispatcher.abort_run(run_id, "operator stop")
    clock.advance(1)

    # The worker shuts down before it heard of the abort and hands the run back.
    assert await dispatcher.release_runs(IO_WORKER, [run_id]) == [run_id]

    run = await dispatcher.get_run(run_id)
    assert (run.state, run.reason, run.end) == (TaskState.aborted, "operator stop", clock.now)
    assert await lease_ids(dispatcher) == []


# -- concurrency, disabled tasks and worker kinds ----------------------------------------


async def test_a_run_over_max_concurrency_is_rate_limited(dispatcher: Dispatcher) -> None:
    await register(dispatcher, TaskDefinition(name="add", max_concurrency=1))
    first = await queue(dispatcher)
    second = await queue(dispatcher)

    assert await lease_ids(dispatcher) == [first.id]

    run = await dispatcher.get_run(second.id)
    assert run.state is TaskState.rate_limited
    assert "max_concurrency=1" in run.reason
    assert dict(await dispatcher.store.running_counts()) == {"add": 1}
    assert await dispatcher.take_settled(IO_WORKER) == [run]


async def test_a_rate_limit_retry_keeps_the_run_queued(
    dispatcher: Dispatcher, clock: FakeClock
) -> None:
    policy = RetryPolicy(max_attempts=3, wait=5)
    await register(
        dispatcher, TaskDefinition(name="add", max_concurrency=1, rate_limit_retry=policy)
    )
    first = await queue(dispatcher)
    second = await queue(dispatcher)

    assert await lease_ids(dispatcher) == [first.id]

    run = await dispatcher.get_run(second.id)
    assert (run.state, run.rate_limit_attempt, run.attempt) == (TaskState.queued, 1, 0)
    assert run.execute_after == clock.now + timedelta(seconds=5)
    # Once the first is done and the back-off is over, it runs.
    await dispatcher.report(IO_WORKER, first.id, 0, RunReport(TaskState.success))
    clock.advance(5)
    assert await lease_ids(dispatcher) == [second.id]


async def test_a_run_of_a_disabled_task_is_aborted(dispatcher: Dispatcher) -> None:
    await register(dispatcher, ADD)
    run_id = (await queue(dispatcher)).id
    await dispatcher.set_task_enabled("add", False)

    assert await lease_ids(dispatcher) == []

    run = await dispatcher.get_run(run_id)
    assert run.state is TaskState.aborted
    assert "disabled" in run.reason


class SlowTaskReadStore(MemoryQueueStore):
    """A memory store whose task reads return a snapshot taken before they are released,
    as a Redis round trip can when an operator toggles the task meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def get_task(self, name: str) -> TaskRecord | None:
        snapshot = await super().get_task(name)
        self.reading.set()
        await self.release.wait()
        return snapshot


async def test_a_task_read_overlapping_a_disable_is_not_cached() -> None:
    store = SlowTaskReadStore()
    dispatcher = Dispatcher(store, DispatcherConfig(task_cache_ttl=timedelta(hours=1)))
    await register(dispatcher, ADD)
    stale_read = asyncio.create_task(queue(dispatcher))
    await asyncio.wait_for(store.reading.wait(), PROMPTLY)
    store.release.set()  # the disable below does not wait on reads
    await dispatcher.set_task_enabled("add", False)
    await stale_read

    assert await lease_ids(dispatcher) == []
    await store.close()


async def test_set_task_enabled_of_an_unknown_task_is_not_found(dispatcher: Dispatcher) -> None:
    with pytest.raises(NotFoundError):
        await dispatcher.set_task_enabled("missing", False)


async def test_lease_runs_for_an_unregistered_worker_fails(dispatcher: Dispatcher) -> None:
    await register(dispatcher, ADD)
    await queue(dispatcher)

    with pytest.raises(FailedPreconditionError, match="ghost"):
        await dispatcher.lease_runs("ghost", 1, timedelta(0))


async def test_workers_get_only_runs_of_their_kind(dispatcher: Dispatcher) -> None:
    scan = TaskDefinition(name="scan", cpu_bound=True)
    # An io worker may import a module with CPU tasks: it still never runs them.
    await register(dispatcher, ADD, scan)
    await register(dispatcher, scan, worker_id=CPU_WORKER, kind=WorkerKind.cpu)
    add_run = await queue(dispatcher)
    scan_run = await queue(dispatcher, "scan", params={})

    assert await lease_ids(dispatcher, IO_WORKER) == [add_run.id]
    assert await lease_ids(dispatcher, CPU_WORKER) == [scan_run.id]


async def test_a_cpu_worker_does_not_get_io_runs(dispatcher: Dispatcher) -> None:
    await register(dispatcher, ADD, worker_id=CPU_WORKER, kind=WorkerKind.cpu)
    run_id = (await queue(dispatcher)).id

    assert await lease_ids(dispatcher, CPU_WORKER) == []
    assert (await dispatcher.get_run(run_id)).state is TaskState.queued


async def test_a_waiting_lease_returns_a_run_queued_meanwhile(
    dispatcher: Dispatcher, store: SignallingStore
) -> None:
    await register(dispatcher, ADD)
    leasing = asyncio.create_task(dispatcher.lease_runs(IO_WORKER, 1, timedelta(seconds=30)))
    await asyncio.wait_for(store.waiting.wait(), PROMPTLY)

    run = await queue(dispatcher)

    leased = await asyncio.wait_for(leasing, PROMPTLY)
    assert [(leased_run.id, leased_run.state) for leased_run, _ in leased] == [
        (run.id, TaskState.running)
    ]


async def test_a_full_memory_store_refuses_new_runs_and_keeps_the_queued_ones() -> None:
    dispatcher = Dispatcher(MemoryQueueStore(max_runs=2))
    await register(dispatcher, ADD)
    kept = [await queue(dispatcher), await queue(dispatcher)]

    with pytest.raises(ResourceExhaustedError, match="FLUID_MEMORY_MAX_RUNS"):
        await queue(dispatcher)
    with pytest.raises(ResourceExhaustedError):
        await dispatcher.queue_runs([RunRequest(task="add", params={"a": 1})])
    # A retried call for a run the store holds is answered, full or not.
    again, created = await dispatcher.queue_run(
        RunRequest(task="add", params={"a": 1}, run_id=kept[0].id)
    )
    assert (again.id, created) == (kept[0].id, False)

    assert [(await dispatcher.get_run(run.id)).state for run in kept] == [TaskState.queued] * 2


async def test_a_worker_concurrency_past_one_calls_worth_of_ids_is_refused(
    dispatcher: Dispatcher,
) -> None:
    # Its leases and heartbeats would carry more ids than any call takes: it could never work.
    with pytest.raises(InvalidArgumentError, match=r"^concurrency"):
        await dispatcher.register_worker(IO_WORKER, WorkerKind.io, [ADD], limits().ids_per_call + 1)


async def test_reports_of_a_worker_that_is_not_registered_are_a_failed_precondition(
    dispatcher: Dispatcher,
) -> None:
    with pytest.raises(FailedPreconditionError):
        await dispatcher.report_all("stranger", [("run-1", 0, RunReport(TaskState.success))])


async def test_watch_runs_streams_the_tasks_asked_for_masked(dispatcher: Dispatcher) -> None:
    await register(dispatcher, ADD, TaskDefinition(name="mul"))
    seen: list[Run] = []

    async def follow() -> None:
        async for run in dispatcher.watch_runs(["add"]):
            seen.append(run)

    watcher = asyncio.create_task(follow())
    await asyncio.sleep(0.01)  # subscribed
    await dispatcher.queue_run(RunRequest(task="mul"))
    added = await queue(dispatcher)
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.01)
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    assert [run.id for run in seen] == [added.id]


async def test_watch_runs_refuses_bad_task_lists(dispatcher: Dispatcher) -> None:
    with pytest.raises(InvalidArgumentError, match=r"tasks\[0\]"):
        await anext(dispatcher.watch_runs(["x" * 10_000]))


async def test_a_report_on_a_lease_another_replica_renewed_is_applied_not_ignored(
    store: SignallingStore, clock: FakeClock
) -> None:
    # Replica one leased attempt 0, which expired; replica two leased the retry to the same
    # worker. The report of the retry reaches replica one, whose snapshot is of attempt 0.
    one, two = (Dispatcher(store, DispatcherConfig(lease_ttl=TTL), clock=clock) for _ in "12")
    await register(one, ADD)
    run_id = (await queue(one)).id
    await lease_one(one)
    clock.advance(TTL.total_seconds() + 1)
    assert await two.expire_leases() == 1
    clock.advance(INTERRUPTION_RETRY.wait + 1)
    retried, lease = await lease_one(two)
    assert (retried.id, lease.attempt) == (run_id, 1)

    reply = await one.report_all(IO_WORKER, [(run_id, 1, RunReport(TaskState.success))])

    assert reply.ignored == []
    assert (await one.get_run(run_id)).state is TaskState.success


async def test_a_report_of_an_attempt_aborted_after_its_lease_is_an_abort(
    dispatcher: Dispatcher,
) -> None:
    # The snapshot the lease left predates the abort request: the report is decided again.
    await register(dispatcher, ADD)
    run_id = (await queue(dispatcher)).id
    await lease_one(dispatcher)
    await dispatcher.abort_run(run_id, "stop it")

    await dispatcher.report_all(IO_WORKER, [(run_id, 0, failed("CancelledError"))])

    run = await dispatcher.get_run(run_id)
    assert (run.state, run.reason) == (TaskState.aborted, "stop it")
