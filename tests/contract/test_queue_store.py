"""The QueueStore contract: one suite, run against every store in conftest's STORE_FACTORIES.

Times are fixed offsets from ``T0`` passed as ``now`` (and as each run's ``queued``), so
nothing depends on the wall clock; waits are driven by asyncio tasks and events, with a
generous ``wait_for`` as a safety net, never by sleeping.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fluid.scheduler.definition import TaskDefinition
from fluid.scheduler.errors import ResourceExhaustedError
from fluid.scheduler.models import RunError, TaskPriority, TaskState, WorkerKind
from fluid.scheduler.run import Run
from fluid_dispatcher.domain import transitions
from fluid_dispatcher.domain.ports import BLOCKED_RECOVERY, OutboxEntry, QueueStore, Registered
from fluid_dispatcher.domain.records import Lease, TaskRecord, WorkerRecord

RunChange = Callable[[Run, Lease | None], Run | None]
"""What a test changes a run into (None: nothing), as the domain's decisions do."""

BlockedRun = Callable[[Run, TaskRecord], Run]
"""What a test decides a blocked run becomes, as the domain does."""

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=30)
WORKER = "worker-1"
OTHER_WORKER = "worker-2"
PROMPTLY = 5.0
"""Seconds a wait that should end at once may take before the test fails (a safety net)."""


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def queued_run(
    run_id: str,
    *,
    task: str = "add",
    priority: TaskPriority = TaskPriority.medium,
    queued: datetime = T0,
    execute_after: datetime | None = None,
    **fields: Any,
) -> Run:
    return Run(
        id=run_id,
        task=task,
        priority=priority,
        state=TaskState.queued,
        queued=queued,
        execute_after=execute_after,
        version=1,
        **fields,
    )


def rate_limited(run: Run, task: TaskRecord) -> Run:
    """A ``BlockedRun`` that ends the run, as the domain does without a rate-limit retry."""
    return replace(run, state=TaskState.rate_limited, end=run.queued, reason=f"{task.name} busy")


def to_state(state: TaskState, end: datetime | None = None, **fields: Any) -> RunChange:
    def change(run: Run, lease: Lease | None) -> Run:
        return replace(run, state=state, end=end, **fields)

    return change


def finish(end: datetime, state: TaskState = TaskState.success) -> RunChange:
    return to_state(state, end=end)


def requeue(run: Run, lease: Lease | None) -> Run:
    return replace(run, state=TaskState.queued, start=None, worker_id="")


async def register(
    store: QueueStore,
    *definitions: TaskDefinition,
    worker_id: str = WORKER,
    now: datetime = T0,
    generation: datetime | None = None,
) -> WorkerRecord:
    if not definitions:
        definitions = (TaskDefinition(name="add"),)
    worker = WorkerRecord(worker_id, WorkerKind.io, frozenset(d.name for d in definitions), 4, now)
    await store.register_worker(worker, definitions, generation)
    assert await store.get_worker(worker_id) == worker
    return worker


async def task_records(store: QueueStore, *names: str) -> list[TaskRecord]:
    records = [await store.get_task(name) for name in names or ("add",)]
    assert all(record is not None for record in records)
    return [record for record in records if record is not None]


async def lease(
    store: QueueStore,
    worker: WorkerRecord,
    now: datetime,
    *,
    tasks: tuple[str, ...] = ("add",),
    max_runs: int = 10,
    blocked: BlockedRun = rate_limited,
) -> list[tuple[Run, Lease]]:
    """A lease step, and ``blocked``'s decision written for each run it blocked."""
    batch = await store.lease_runs(worker, await task_records(store, *tasks), max_runs, now, TTL)
    for item in batch.blocked:
        await update(store, item.run_id, functools.partial(_decide_blocked, blocked, item.task))
    return batch.leased


def _decide_blocked(blocked: BlockedRun, task: TaskRecord, run: Run, lease: Lease | None) -> Run:
    return blocked(run, task)


async def update(store: QueueStore, run_id: str, change: RunChange) -> Run | None:
    """What the domain does through the store: read, decide, compare-and-set."""
    found = await store.read_runs([run_id])
    if run_id not in found:
        return None
    run, lease = found[run_id]
    new = change(run, lease)
    if new is None:
        return None
    new = replace(new, version=run.version + 1)
    (written,) = await store.write_runs([new])
    return new if written else None


async def lease_ids(
    store: QueueStore, worker: WorkerRecord, now: datetime, **options: Any
) -> list[str]:
    return [run.id for run, _ in await lease(store, worker, now, **options)]


async def lease_one_by_one(store: QueueStore, worker: WorkerRecord, now: datetime) -> list[str]:
    order: list[str] = []
    while leased := await lease_ids(store, worker, now, max_runs=1):
        order.extend(leased)
    return order


async def stored(store: QueueStore, run_id: str) -> Run:
    run = await store.get_run(run_id)
    assert run is not None, f"run {run_id} is not stored"
    return run


# -- tasks and workers -----------------------------------------------------------


async def test_register_worker_records_worker_and_tasks(store: QueueStore) -> None:
    definitions = (TaskDefinition(name="add"), TaskDefinition(name="scan", cpu_bound=True))
    worker = WorkerRecord(WORKER, WorkerKind.cpu, frozenset({"add", "scan"}), 3, at(5))
    registered = await store.register_worker(worker, definitions, None)
    assert registered == [Registered(None, None, True), Registered(None, None, True)]

    assert await store.get_worker(WORKER) == worker
    assert [w.worker_id for w in await store.list_workers()] == [WORKER]
    scan = await store.get_task("scan")
    assert scan == TaskRecord(definitions[1], enabled=True)
    assert {record.name for record in await store.list_tasks()} == {"add", "scan"}
    assert await store.get_task("missing") is None


async def test_a_registration_tells_the_definition_and_generation_it_replaced(
    store: QueueStore,
) -> None:
    first = TaskDefinition(name="add", max_concurrency=1)
    await register(store, first, generation=at(1))
    second = TaskDefinition(name="add", max_concurrency=2)
    worker = WorkerRecord(OTHER_WORKER, WorkerKind.io, frozenset({"add"}), 1, T0)

    assert await store.register_worker(worker, [second], at(2)) == [Registered(first, at(1), True)]
    assert await store.get_task("add") == TaskRecord(second, enabled=True, generation=at(2))


async def test_an_older_generation_does_not_revert_a_newer_definition(
    store: QueueStore,
) -> None:
    newer = TaskDefinition(name="add", timeout_seconds=5)
    older = TaskDefinition(name="add", timeout_seconds=60)
    await register(store, newer, generation=at(10))
    worker = WorkerRecord(OTHER_WORKER, WorkerKind.io, frozenset({"add"}), 1, T0)

    for generation in (at(9), None):
        assert await store.register_worker(worker, [older], generation) == [
            Registered(newer, at(10), False)
        ]
    assert await store.get_task("add") == TaskRecord(newer, enabled=True, generation=at(10))
    # The older worker is still a worker of the task: it keeps leasing its runs.
    assert await store.get_worker(OTHER_WORKER) == worker
    # The same generation again (the newest worker re-registering) is taken.
    await register(store, older, generation=at(10))
    record = await store.get_task("add")
    assert record is not None and record.definition == older


async def test_last_registration_wins_but_keeps_the_enabled_flag(store: QueueStore) -> None:
    await register(store, TaskDefinition(name="add", max_concurrency=1))
    await store.set_task_enabled("add", False)

    await register(store, TaskDefinition(name="add", max_concurrency=5), worker_id=OTHER_WORKER)

    record = await store.get_task("add")
    assert record is not None
    assert record.definition.max_concurrency == 5
    assert record.enabled is False


async def test_set_task_enabled(store: QueueStore) -> None:
    await register(store)

    disabled = await store.set_task_enabled("add", False)
    assert disabled is not None and disabled.enabled is False
    enabled = await store.set_task_enabled("add", True)
    assert enabled is not None and enabled.enabled is True
    assert await store.set_task_enabled("missing", False) is None


async def test_remove_worker(store: QueueStore) -> None:
    await register(store)

    await store.remove_worker(WORKER)

    assert await store.get_worker(WORKER) is None
    assert await store.list_workers() == []


# -- adding and changing runs ----------------------------------------------------------


async def test_add_run_stores_a_new_run(store: QueueStore) -> None:
    run = queued_run("run-1", params={"a": 1})

    assert await store.add_run(run) == (run, True)
    assert await store.get_run("run-1") == run
    assert await store.get_run("missing") is None


async def test_every_field_of_a_run_survives_the_store(store: QueueStore) -> None:
    run = queued_run(
        "run-1",
        params={"ids": [], "nested": {"empty": {}, "list": [1, 2.5, "x", None, True]}},
        execute_after=T0 + timedelta(seconds=5),
        attempt=2,
        rate_limit_attempt=1,
        from_run_id="parent",
        root_run_id="root",
        result=[],
        error=RunError("ValueError", "boom", "Traceback ..."),
        reason="why",
        tags=frozenset({"billing", "skip_db"}),
        trace_context={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"},
        worker_id="worker-1",
        output_tail=("line 1", "", "line 3"),
    )
    await store.add_run(run)
    assert await store.get_run("run-1") == run


async def test_add_run_with_a_known_id_returns_the_existing_run(store: QueueStore) -> None:
    first = queued_run("run-1", params={"a": 1})
    await store.add_run(first)

    assert await store.add_run(queued_run("run-1", params={"a": 2})) == (first, False)
    assert await store.get_run("run-1") == first


async def test_add_run_with_a_known_idempotency_key_returns_the_existing_run(
    store: QueueStore,
) -> None:
    first = queued_run("run-1")
    assert await store.add_run(first, idempotency_key="key-1") == (first, True)

    assert await store.add_run(queued_run("run-2"), idempotency_key="key-1") == (first, False)
    assert await store.get_run("run-2") is None
    # Another key queues another run.
    second = queued_run("run-3")
    assert await store.add_run(second, idempotency_key="key-2") == (second, True)


async def test_a_write_after_a_read_applies_the_change(
    store: QueueStore,
) -> None:
    await store.add_run(queued_run("run-1"))
    seen: list[tuple[Run, Lease | None]] = []

    def change(run: Run, lease: Lease | None) -> Run:
        seen.append((run, lease))
        return replace(run, params={"a": 2})

    updated = await update(store, "run-1", change)

    assert seen == [(queued_run("run-1"), None)]
    assert updated == replace(queued_run("run-1"), params={"a": 2}, version=2)
    assert await store.get_run("run-1") == updated


async def test_a_write_is_a_compare_and_set_on_the_version(store: QueueStore) -> None:
    await store.add_run(queued_run("run-1"))
    ((run, lease),) = (await store.read_runs(["run-1", "missing"])).values()
    assert (run, lease) == (queued_run("run-1"), None)

    first = replace(run, params={"by": "replica-1"}, version=2)
    second = replace(run, params={"by": "replica-2"}, version=2)
    gone = replace(queued_run("missing"), version=2)

    assert await store.write_runs([first, second, gone]) == [True, False, False]
    assert await store.get_run("run-1") == first
    assert await store.write_runs([replace(first, version=1)]) == [False]
    assert await store.write_runs([replace(first, params={}, version=3)]) == [True]


async def test_a_leased_run_is_what_transitions_leased_makes_of_it(store: QueueStore) -> None:
    worker = await register(store)
    queued = queued_run("run-1", params={"a": 1})
    await store.add_run(queued)

    [(running, held)] = await lease(store, worker, at(3))

    expected = replace(transitions.leased(queued, worker.worker_id, at(3)), version=2)
    assert running == expected == await store.get_run("run-1")
    assert (held.worker_id, held.attempt, held.deadline) == (worker.worker_id, 0, at(3) + TTL)


async def test_a_blocked_run_left_undecided_is_queued_again_later(store: QueueStore) -> None:
    worker = await register(store, TaskDefinition(name="add", max_concurrency=1))
    await store.add_run(queued_run("first", queued=at(0)))
    await store.add_run(queued_run("second", queued=at(1)))
    tasks = await task_records(store)

    # A dispatcher that blocked "second" and died before writing its decision.
    batch = await store.lease_runs(worker, tasks, 10, at(5), TTL)
    assert [item.run_id for item in batch.blocked] == ["second"]
    await update(store, "first", finish(at(6)))
    assert (await store.lease_runs(worker, tasks, 10, at(7), TTL)).leased == []

    later = at(5) + BLOCKED_RECOVERY + timedelta(seconds=1)
    leased = (await store.lease_runs(worker, tasks, 10, later, TTL)).leased
    assert [run.id for run, _ in leased] == ["second"]


async def test_version_grows_by_one_per_change(store: QueueStore) -> None:
    worker = await register(store)
    await store.add_run(queued_run("run-1"))

    versions = [(await stored(store, "run-1")).version]
    [(running, _)] = await lease(store, worker, at(1))
    versions.append(running.version)
    for n in range(2):
        changed = await update(store, "run-1", to_state(TaskState.running, params={"n": n}))
        assert changed is not None
        versions.append(changed.version)
    done = await update(store, "run-1", finish(at(2)))
    assert done is not None
    versions.append(done.version)

    assert versions == [1, 2, 3, 4, 5]
    assert (await stored(store, "run-1")).version == 5


async def test_a_change_to_nothing_writes_nothing(store: QueueStore) -> None:
    run = queued_run("run-1")
    await store.add_run(run)
    outbox_before = await store.read_outbox(100)

    assert await update(store, "run-1", lambda current, lease: None) is None

    assert await store.get_run("run-1") == run
    assert await store.read_outbox(100) == outbox_before


async def test_an_unknown_run_is_not_read_nor_written(store: QueueStore) -> None:
    calls: list[Run] = []

    def change(run: Run, lease: Lease | None) -> Run:
        calls.append(run)
        return run

    assert await update(store, "missing", change) is None
    assert calls == []
    assert await store.get_run("missing") is None


# -- leasing ---------------------------------------------------------------------


async def test_lease_marks_the_run_running_under_a_lease(store: QueueStore) -> None:
    worker = await register(store)
    await store.add_run(queued_run("run-1", attempt=2))

    [(run, run_lease)] = await lease(store, worker, at(3))

    assert run == replace(
        queued_run("run-1", attempt=2),
        state=TaskState.running,
        start=at(3),
        worker_id=WORKER,
        version=2,
    )
    assert run_lease == Lease("run-1", WORKER, 2, at(3) + TTL)
    assert await store.get_run("run-1") == run
    # A leased run is no longer ready.
    assert await lease(store, worker, at(4)) == []


async def test_lease_serves_high_then_medium_then_low(store: QueueStore) -> None:
    worker = await register(store)
    for priority in (TaskPriority.low, TaskPriority.medium, TaskPriority.high):
        await store.add_run(queued_run(priority.value, priority=priority))

    assert await lease_one_by_one(store, worker, at(1)) == ["high", "medium", "low"]


async def test_lease_returns_runs_in_order(store: QueueStore) -> None:
    worker = await register(store)
    for priority in (TaskPriority.low, TaskPriority.medium, TaskPriority.high):
        await store.add_run(queued_run(priority.value, priority=priority))

    assert await lease_ids(store, worker, at(1)) == ["high", "medium", "low"]


async def test_lease_is_fifo_within_a_priority(store: QueueStore) -> None:
    worker = await register(store)
    # Ids that sort against the queue order, so no store can get it right by id.
    for offset, run_id in enumerate(("c-first", "b-second", "a-third")):
        await store.add_run(queued_run(run_id, queued=at(offset)))

    assert await lease_one_by_one(store, worker, at(10)) == ["c-first", "b-second", "a-third"]


async def test_lease_orders_runs_across_tasks(store: QueueStore) -> None:
    worker = await register(store, TaskDefinition(name="add"), TaskDefinition(name="scan"))
    await store.add_run(queued_run("medium-add", task="add", queued=at(0)))
    await store.add_run(queued_run("low-scan", task="scan", priority=TaskPriority.low))
    await store.add_run(
        queued_run("high-scan", task="scan", priority=TaskPriority.high, queued=at(5))
    )

    leased = await lease_ids(store, worker, at(10), tasks=("add", "scan"), max_runs=1)
    assert leased == ["high-scan"]
    leased = await lease_ids(store, worker, at(10), tasks=("add", "scan"), max_runs=1)
    assert leased == ["medium-add"]


async def test_a_low_run_waiting_long_enough_beats_a_newer_high_run(store: QueueStore) -> None:
    worker = await register(store)
    await store.add_run(queued_run("high", priority=TaskPriority.high, queued=at(61)))
    await store.add_run(queued_run("low", priority=TaskPriority.low, queued=at(0)))

    assert await lease_one_by_one(store, worker, at(61)) == ["low", "high"]


async def test_a_low_run_not_waiting_long_enough_yields_to_a_high_run(store: QueueStore) -> None:
    worker = await register(store)
    await store.add_run(queued_run("low", priority=TaskPriority.low, queued=at(0)))
    await store.add_run(queued_run("high", priority=TaskPriority.high, queued=at(59)))

    assert await lease_one_by_one(store, worker, at(59)) == ["high", "low"]


async def test_lease_takes_at_most_max_runs(store: QueueStore) -> None:
    worker = await register(store)
    for offset in range(3):
        await store.add_run(queued_run(f"run-{offset}", queued=at(offset)))

    assert await lease_ids(store, worker, at(10), max_runs=2) == ["run-0", "run-1"]
    assert (await stored(store, "run-2")).state is TaskState.queued


async def test_a_delayed_run_is_leased_only_once_due(store: QueueStore) -> None:
    worker = await register(store)
    await store.add_run(queued_run("later", queued=at(0), execute_after=at(30)))

    assert await lease_ids(store, worker, at(29)) == []
    assert (await stored(store, "later")).state is TaskState.queued
    assert await lease_ids(store, worker, at(31)) == ["later"]


async def test_a_delayed_run_queues_behind_runs_that_were_due_before_it(
    store: QueueStore,
) -> None:
    worker = await register(store)
    await store.add_run(queued_run("later", queued=at(0), execute_after=at(30)))
    await store.add_run(queued_run("sooner", queued=at(20)))

    assert await lease_one_by_one(store, worker, at(40)) == ["sooner", "later"]


async def test_lease_takes_only_the_tasks_passed(store: QueueStore) -> None:
    worker = await register(store, TaskDefinition(name="add"), TaskDefinition(name="scan"))
    await store.add_run(queued_run("add-1", task="add"))
    await store.add_run(queued_run("scan-1", task="scan"))

    assert await lease_ids(store, worker, at(1), tasks=("scan",)) == ["scan-1"]
    assert (await stored(store, "add-1")).state is TaskState.queued
    assert await lease_ids(store, worker, at(1), tasks=("add",)) == ["add-1"]


async def test_a_run_over_max_concurrency_becomes_blocked(store: QueueStore) -> None:
    worker = await register(store, TaskDefinition(name="add", max_concurrency=1))
    await store.add_run(queued_run("first", queued=at(0)))
    await store.add_run(queued_run("second", queued=at(1)))
    blocked_calls: list[tuple[Run, TaskRecord]] = []

    def blocked(run: Run, task: TaskRecord) -> Run:
        blocked_calls.append((run, task))
        return rate_limited(run, task)

    assert await lease_ids(store, worker, at(5), blocked=blocked) == ["first"]

    [(blocked_run, blocked_task)] = blocked_calls
    assert blocked_run == queued_run("second", queued=at(1))
    assert blocked_task.name == "add" and blocked_task.definition.max_concurrency == 1
    second = await stored(store, "second")
    assert second == replace(
        rate_limited(blocked_run, blocked_task), version=blocked_run.version + 1
    )
    assert second.state is TaskState.rate_limited
    assert (await store.running_counts()).get("add") == 1


async def test_max_concurrency_counts_runs_leased_earlier(store: QueueStore) -> None:
    worker = await register(store, TaskDefinition(name="add", max_concurrency=1))
    await store.add_run(queued_run("first", queued=at(0)))
    await store.add_run(queued_run("second", queued=at(1)))

    assert await lease_ids(store, worker, at(5), max_runs=1) == ["first"]
    assert await lease_ids(store, worker, at(6)) == []

    assert (await stored(store, "second")).state is TaskState.rate_limited


async def test_a_blocked_run_put_back_in_the_queue_is_leased_once_due(store: QueueStore) -> None:
    worker = await register(store, TaskDefinition(name="add", max_concurrency=1))
    await store.add_run(queued_run("first", queued=at(0)))
    await store.add_run(queued_run("second", queued=at(1)))

    def retry_later(run: Run, task: TaskRecord) -> Run:
        return replace(run, rate_limit_attempt=run.rate_limit_attempt + 1, execute_after=at(60))

    assert await lease_ids(store, worker, at(5), blocked=retry_later) == ["first"]
    second = await stored(store, "second")
    assert (second.state, second.rate_limit_attempt, second.version) == (TaskState.queued, 1, 2)

    await update(store, "first", finish(at(10)))
    assert await lease_ids(store, worker, at(59), blocked=retry_later) == []
    assert await lease_ids(store, worker, at(60), blocked=retry_later) == ["second"]


async def test_a_run_of_a_disabled_task_becomes_blocked(store: QueueStore) -> None:
    worker = await register(store)
    await store.add_run(queued_run("run-1"))
    await store.set_task_enabled("add", False)
    blocked_tasks: list[TaskRecord] = []

    def blocked(run: Run, task: TaskRecord) -> Run:
        blocked_tasks.append(task)
        return replace(run, state=TaskState.aborted, end=at(1), reason="disabled")

    assert await lease_ids(store, worker, at(1), blocked=blocked) == []

    assert [task.enabled for task in blocked_tasks] == [False]
    run = await stored(store, "run-1")
    assert (run.state, run.reason, run.version) == (TaskState.aborted, "disabled", 2)
    assert (await store.running_counts()).get("add", 0) == 0


async def test_lease_honours_a_disable_its_caller_has_not_seen(store: QueueStore) -> None:
    """A dispatcher replica leases with its cached registration; the store's flag wins."""
    worker = await register(store)
    await store.add_run(queued_run("run-1"))
    cached = await task_records(store)
    await store.set_task_enabled("add", False)
    blocked_tasks: list[TaskRecord] = []

    def blocked(run: Run, task: TaskRecord) -> Run:
        blocked_tasks.append(task)
        return replace(run, state=TaskState.aborted, end=at(1), reason="disabled")

    batch = await store.lease_runs(worker, cached, 10, at(1), TTL)
    assert batch.leased == []
    assert [(item.run_id, item.task.enabled) for item in batch.blocked] == [("run-1", False)]


async def test_running_counts_follow_leases(store: QueueStore) -> None:
    worker = await register(store, TaskDefinition(name="add"), TaskDefinition(name="scan"))
    for run_id in ("add-1", "add-2", "add-3"):
        await store.add_run(queued_run(run_id, task="add"))
    await store.add_run(queued_run("scan-1", task="scan"))
    assert (await store.running_counts()).get("add", 0) == 0

    await lease(store, worker, at(1), tasks=("add", "scan"))
    assert dict(await store.running_counts()) == {"add": 3, "scan": 1}

    await update(store, "add-1", finish(at(2)))
    assert (await store.running_counts()).get("add") == 2
    await update(store, "add-2", finish(at(2), TaskState.failure))
    assert (await store.running_counts()).get("add") == 1
    # Back in the queue (a retry or a hand-back): no longer running, leasable again.
    await update(store, "add-3", requeue)
    assert (await store.running_counts()).get("add", 0) == 0
    assert await lease_ids(store, worker, at(3)) == ["add-3"]
    assert (await store.running_counts()).get("add") == 1
    # A change that keeps the run running keeps its count.
    await update(store, "scan-1", to_state(TaskState.running, params={"n": 1}))
    assert (await store.running_counts()).get("scan") == 1


# -- leases ----------------------------------------------------------------------


async def test_extend_leases_renews_only_the_workers_own_leases(store: QueueStore) -> None:
    worker = await register(store)
    other = await register(store, worker_id=OTHER_WORKER)
    await store.add_run(queued_run("mine", queued=at(0)))
    await store.add_run(queued_run("theirs", queued=at(1)))
    assert await lease_ids(store, worker, at(0), max_runs=1) == ["mine"]
    assert await lease_ids(store, other, at(0), max_runs=1) == ["theirs"]
    deadline_of: list[str] = []

    def deadline(run: Run) -> datetime:
        deadline_of.append(run.id)
        return at(100)

    reply = await store.extend_leases(WORKER, ["mine", "theirs", "missing"], deadline, at(10))

    assert reply.aborts == {}
    assert sorted(reply.lost) == ["missing", "theirs"]
    assert deadline_of == ["mine"]
    worker_now = await store.get_worker(WORKER)
    assert worker_now is not None and worker_now.last_seen == at(10)
    # Only "theirs" still has its first deadline (at(0) + TTL).
    assert [lease.run_id for lease in await store.expired_leases(at(50), 10)] == ["theirs"]
    assert await store.expired_leases(at(100), 10) != []


async def test_a_finished_run_has_no_lease(store: QueueStore) -> None:
    worker = await register(store)
    await store.add_run(queued_run("run-1"))
    await lease(store, worker, at(0))

    await update(store, "run-1", finish(at(1)))

    reply = await store.extend_leases(WORKER, ["run-1"], lambda run: at(100), at(2))
    assert reply.lost == ["run-1"]
    assert await store.expired_leases(at(1000), 10) == []


async def test_request_abort_reaches_the_lease_and_the_heartbeat(store: QueueStore) -> None:
    worker = await register(store)
    await store.add_run(queued_run("run-1"))
    await lease(store, worker, at(0))

    assert await store.request_abort("run-1", "operator said so") is True

    reply = await store.extend_leases(WORKER, ["run-1"], lambda run: at(100), at(1))
    assert reply.aborts == {"run-1": "operator said so"}
    assert reply.lost == []
    leases: list[Lease | None] = []

    def capture(run: Run, held: Lease | None) -> None:
        leases.append(held)

    await update(store, "run-1", capture)
    assert [held.abort_reason if held else None for held in leases] == ["operator said so"]
    assert (await stored(store, "run-1")).state is TaskState.running


async def test_request_abort_gives_the_run_a_new_version(store: QueueStore) -> None:
    # A write decided on the lease as it was before must fail its compare-and-set.
    worker = await register(store)
    await store.add_run(queued_run("run-1"))
    [(leased, _)] = await lease(store, worker, at(0))

    assert await store.request_abort("run-1", "operator said so") is True

    assert (await stored(store, "run-1")).version == leased.version + 1
    finished = replace(leased, state=TaskState.success, version=leased.version + 1)
    assert await store.write_runs([finished]) == [False]


async def test_request_abort_of_a_run_not_running_returns_false(store: QueueStore) -> None:
    await register(store)
    await store.add_run(queued_run("queued"))
    await store.add_run(queued_run("done"))
    await update(store, "done", finish(at(1)))

    assert await store.request_abort("queued", "stop") is False
    assert await store.request_abort("done", "stop") is False
    assert await store.request_abort("missing", "stop") is False
    assert (await stored(store, "queued")).state is TaskState.queued


async def test_expired_leases_are_those_past_their_deadline(store: QueueStore) -> None:
    worker = await register(store)
    await store.add_run(queued_run("early", queued=at(0)))
    await store.add_run(queued_run("late", queued=at(1)))
    [(_, early_lease)] = await lease(store, worker, at(0), max_runs=1)
    [(_, late_lease)] = await lease(store, worker, at(10), max_runs=1)

    assert await store.expired_leases(at(5), 10) == []
    assert await store.expired_leases(T0 + TTL + timedelta(seconds=1), 10) == [early_lease]
    expired = await store.expired_leases(at(100), 10)
    assert sorted(expired, key=lambda held: held.run_id) == [early_lease, late_lease]
    assert len(await store.expired_leases(at(100), 1)) == 1
    # Listing does not end a lease: the run is still running until updated.
    assert (await stored(store, "early")).state is TaskState.running


# -- forgetting finished runs ------------------------------------------------------


async def test_purge_finished_forgets_runs_that_ended_before_the_cutoff(store: QueueStore) -> None:
    worker = await register(store)
    await store.add_run(queued_run("running", queued=at(0)))
    for run_id in ("old-success", "old-failure", "recent", "queued"):
        await store.add_run(queued_run(run_id, queued=at(1)))
    assert await lease_ids(store, worker, at(1), max_runs=1) == ["running"]
    await update(store, "old-success", finish(at(10)))
    await update(store, "old-failure", finish(at(20), TaskState.failure))
    await update(store, "recent", finish(at(100)))

    assert await store.purge_finished(at(50), 100) == 2

    assert await store.get_run("old-success") is None
    assert await store.get_run("old-failure") is None
    assert (await stored(store, "recent")).state is TaskState.success
    assert (await stored(store, "running")).state is TaskState.running
    assert (await stored(store, "queued")).state is TaskState.queued
    # Runs still live are never purged, however old.
    assert await store.purge_finished(at(10_000), 100) == 1
    assert {r.state for r in [await stored(store, "running"), await stored(store, "queued")]} == {
        TaskState.running,
        TaskState.queued,
    }


async def test_purge_finished_stops_at_the_limit(store: QueueStore) -> None:
    for n in range(3):
        await store.add_run(queued_run(f"run-{n}"))
        await update(store, f"run-{n}", finish(at(n)))

    assert await store.purge_finished(at(50), 2) == 2
    assert await store.purge_finished(at(50), 2) == 1
    assert await store.purge_finished(at(50), 2) == 0


async def test_purge_finished_frees_the_idempotency_key(store: QueueStore) -> None:
    await store.add_run(queued_run("run-1"), idempotency_key="key-1")
    await update(store, "run-1", finish(at(1)))

    assert await store.purge_finished(at(50), 10) == 1

    fresh = queued_run("run-2", queued=at(60))
    assert await store.add_run(fresh, idempotency_key="key-1") == (fresh, True)


# -- announcements of runs the dispatcher ended ----------------------------------
async def test_announced_runs_are_taken_once_oldest_first(store: QueueStore) -> None:
    await store.announce([("add", "a1"), ("mul", "m1"), ("add", "a2")])
    await store.announce([("add", "a3")])

    assert await store.take_announced(["add", "mul"], 2) == ["a1", "a2"]
    assert await store.take_announced(["add", "mul"], 10) == ["a3", "m1"]
    assert await store.take_announced(["add", "mul"], 10) == []


async def test_announcements_are_only_for_workers_of_the_task(store: QueueStore) -> None:
    await store.announce([("add", "a1")])

    assert await store.take_announced(["mul"], 10) == []
    assert await store.take_announced([], 10) == []
    assert await store.take_announced(["add"], 0) == []
    assert await store.take_announced(["add"], 10) == ["a1"]


async def test_announcements_per_task_are_bounded(
    store: QueueStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("fluid_dispatcher.store.memory", "fluid_dispatcher.store.redis"):
        monkeypatch.setattr(f"{module}.MAX_ANNOUNCED_PER_TASK", 3)
    await store.announce([("add", f"a{n}") for n in range(5)])

    # The oldest are dropped: a task nobody leases any more cannot fill the store.
    assert await store.take_announced(["add"], 10) == ["a2", "a3", "a4"]


# -- watching --------------------------------------------------------------------


async def test_watch_yields_newer_versions_until_the_run_is_done(store: QueueStore) -> None:
    worker = await register(store)
    await store.add_run(queued_run("run-1"))
    seen: list[Run] = []
    first_seen = asyncio.Event()

    async def follow() -> None:
        async for run in store.watch("run-1"):
            seen.append(run)
            first_seen.set()

    watcher = asyncio.create_task(follow())
    await asyncio.wait_for(first_seen.wait(), PROMPTLY)

    await lease(store, worker, at(1))
    await update(store, "run-1", to_state(TaskState.running, params={"progress": 1}))
    await update(store, "run-1", finish(at(2)))
    await asyncio.wait_for(watcher, PROMPTLY)

    # Changes in quick succession may reach a watcher as one (it reads the newest), but
    # it starts from the current version, never goes back and ends with the done run.
    versions = [(run.version, run.state) for run in seen]
    assert versions[0] == (1, TaskState.queued)
    assert versions[-1] == (4, TaskState.success)
    assert versions == sorted(set(versions))
    assert set(versions) <= {
        (1, TaskState.queued),
        (2, TaskState.running),
        (3, TaskState.running),
        (4, TaskState.success),
    }
    assert seen[-1] == await store.get_run("run-1")


async def test_watch_changes_yields_every_runs_changes_from_now_on(store: QueueStore) -> None:
    await store.add_run(queued_run("before"))
    seen: list[tuple[str, int]] = []
    enough = asyncio.Event()

    async def follow() -> None:
        async for run in store.watch_changes():
            seen.append((run.id, run.version))
            if len([item for item in seen if item[0] != "before"]) == 3:
                enough.set()

    watcher = asyncio.create_task(follow())
    # A change only counts once the subscription is in place: poke until one arrives.
    for _ in range(100):
        await update(store, "before", to_state(TaskState.queued, reason=f"poke {len(seen)}"))
        if seen:
            break
        await asyncio.sleep(0.02)
    assert seen, "the change feed never heard a change"
    await store.add_run(queued_run("a"))
    await store.add_run(queued_run("b"))
    await update(store, "a", finish(at(1)))
    await asyncio.wait_for(enough.wait(), PROMPTLY)
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    # The pokes may still be arriving; the runs changed since come in order.
    assert [item for item in seen if item[0] != "before"] == [("a", 1), ("b", 1), ("a", 2)]


async def test_watch_changes_streams_are_bounded(
    store: QueueStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fluid_dispatcher.store.feed.MAX_FEED_SUBSCRIBERS", 1)

    async def hold() -> None:
        async for _ in store.watch_changes():
            pass

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0.2)  # the first stream subscribes
    with pytest.raises(ResourceExhaustedError, match="streams of run changes"):
        await anext(store.watch_changes())
    holder.cancel()
    await asyncio.gather(holder, return_exceptions=True)


async def test_watch_of_a_finished_run_yields_it_once(store: QueueStore) -> None:
    await store.add_run(queued_run("run-1"))
    done = await update(store, "run-1", finish(at(1), TaskState.aborted))

    seen = [run async for run in store.watch("run-1")]

    assert seen == [done]


async def test_watch_of_an_unknown_run_yields_nothing(store: QueueStore) -> None:
    assert [run async for run in store.watch("missing")] == []


# -- outbox to history -------------------------------------------------------------


async def test_outbox_keeps_every_snapshot_in_order_until_acked(store: QueueStore) -> None:
    worker = await register(store)
    await store.add_run(queued_run("run-1"))
    await lease(store, worker, at(1))
    await update(store, "run-1", finish(at(2)))

    entries = await store.read_outbox(10)

    assert [(entry.run().id, entry.run().version, entry.run().state) for entry in entries] == [
        ("run-1", 1, TaskState.queued),
        ("run-1", 2, TaskState.running),
        ("run-1", 3, TaskState.success),
    ]
    assert len({entry.entry_id for entry in entries}) == 3
    # Reading does not consume: unacknowledged entries are read again.
    assert await store.read_outbox(10) == entries
    assert await store.read_outbox(2) == entries[:2]

    await store.ack_outbox(entries[:2])
    assert await store.read_outbox(10) == entries[2:]
    await store.ack_outbox(entries[2:])
    assert await store.read_outbox(10) == []


async def test_a_store_without_outbox_keeps_no_entries(store_without_outbox: QueueStore) -> None:
    store = store_without_outbox
    worker = await register(store)
    await store.add_run(queued_run("run-1"))
    await lease(store, worker, at(1))
    await update(store, "run-1", finish(at(2)))

    assert await store.read_outbox(10) == []
    assert (await stored(store, "run-1")).state is TaskState.success


async def test_a_waiting_outbox_read_returns_when_an_entry_is_added(store: QueueStore) -> None:
    waiting = asyncio.Event()

    async def wait() -> list[OutboxEntry]:
        waiting.set()
        return await store.read_outbox(10, wait=60)

    waiter = asyncio.create_task(wait())
    await waiting.wait()
    await store.add_run(queued_run("run-1"))

    entries = await asyncio.wait_for(waiter, PROMPTLY)
    assert [entry.run().id for entry in entries] == ["run-1"]
    assert await store.outbox_size() == 1
    await store.ack_outbox(entries)
    assert await store.outbox_size() == 0


# -- max_queued ----------------------------------------------------------------------


async def test_max_queued_refuses_a_batch_that_would_pass_it_whole(store: QueueStore) -> None:
    await store.add_run(queued_run("r1"), max_queued=3)
    await store.add_run(queued_run("r2", execute_after=at(60)), max_queued=3)  # delayed too

    with pytest.raises(ResourceExhaustedError, match="task add has 2 runs waiting"):
        await store.add_runs(
            [(queued_run("r3"), ""), (queued_run("r4"), "")], {"add": 3, "other": 1}
        )

    assert await store.get_run("r3") is None and await store.get_run("r4") is None
    # What already exists does not count again; other tasks have their own room.
    again = await store.add_runs([(queued_run("r1"), ""), (queued_run("r3"), "")], {"add": 3})
    assert [created for _, created in again] == [False, True]
    await store.add_run(queued_run("o1", task="other"), max_queued=1)
    with pytest.raises(ResourceExhaustedError):
        await store.add_run(queued_run("r5"), max_queued=3)
    assert (await store.add_run(queued_run("r5")))[1], "no limit, no refusal"


async def test_a_leased_run_makes_room_under_max_queued(store: QueueStore) -> None:
    worker = await register(store)
    await store.add_run(queued_run("r1"), max_queued=1)
    with pytest.raises(ResourceExhaustedError):
        await store.add_run(queued_run("r2"), max_queued=1)

    assert await lease_ids(store, worker, at(1)) == ["r1"]

    assert (await store.add_run(queued_run("r2"), max_queued=1))[1]
    await update(store, "r1", finish(at(2)))
    with pytest.raises(ResourceExhaustedError):
        await store.add_run(queued_run("r3"), max_queued=1)


# -- dead letters --------------------------------------------------------------------


async def test_a_refused_snapshot_leaves_the_outbox_and_waits_as_a_dead_letter(
    store: QueueStore,
) -> None:
    await store.add_run(queued_run("run-1"))
    await store.add_run(queued_run("run-2", task="other"))
    first, second = await store.read_outbox(10)

    await store.add_dead_letters([(first, "history refused it: too large")], at(5))

    assert await store.read_outbox(10) == [second]
    (letter,) = await store.dead_letters(10)
    assert (letter.run_id, letter.task, letter.state, letter.version) == (
        "run-1",
        "add",
        TaskState.queued,
        1,
    )
    assert (letter.reason, letter.time) == ("history refused it: too large", at(5))
    assert letter.size_bytes > 0
    assert await store.dead_letter_summary() == (1, at(5))


async def test_a_snapshot_acknowledged_meanwhile_makes_no_dead_letter(store: QueueStore) -> None:
    await store.add_run(queued_run("run-1"))
    (entry,) = await store.read_outbox(10)
    # Another replica delivered it (or made it a dead letter) first.
    await store.ack_outbox([entry])

    await store.add_dead_letters([(entry, "refused")], at(1))

    assert await store.dead_letter_summary() == (0, None)


async def test_dead_letters_page_oldest_first_and_retry_or_drop_by_id_or_all(
    store: QueueStore,
) -> None:
    for index in range(5):
        await store.add_run(queued_run(f"run-{index}"))
    entries = await store.read_outbox(10)
    for index, entry in enumerate(entries):
        await store.add_dead_letters([(entry, f"refused {index}")], at(index))
    assert await store.outbox_size() == 0

    first_page = await store.dead_letters(2)
    second_page = await store.dead_letters(2, after=first_page[-1].id)
    rest = await store.dead_letters(10, after=second_page[-1].id)
    assert [letter.run_id for letter in [*first_page, *second_page, *rest]] == [
        f"run-{index}" for index in range(5)
    ]

    assert await store.retry_dead_letters([first_page[0].id, "0-1"]) == 1
    (retried,) = await store.read_outbox(10)
    assert (retried.run_id, retried.run().task) == ("run-0", "add")
    assert await store.drop_dead_letters([first_page[1].id]) == 1
    assert [letter.run_id for letter in await store.dead_letters(10)] == [
        "run-2",
        "run-3",
        "run-4",
    ]
    assert await store.drop_dead_letters(None) == 3
    assert await store.dead_letter_summary() == (0, None)
    assert await store.retry_dead_letters(None) == 0


async def test_retrying_every_dead_letter_puts_each_back_in_the_outbox(store: QueueStore) -> None:
    for index in range(3):
        await store.add_run(queued_run(f"run-{index}"))
    await store.add_dead_letters(
        [(entry, "refused") for entry in await store.read_outbox(10)], at(1)
    )

    assert await store.retry_dead_letters(None) == 3

    assert sorted(entry.run_id for entry in await store.read_outbox(10)) == [
        "run-0",
        "run-1",
        "run-2",
    ]
    assert await store.dead_letter_summary() == (0, None)


# -- waiting for work ----------------------------------------------------------------


async def test_wait_for_work_returns_when_a_run_is_added(store: QueueStore) -> None:
    waiting = asyncio.Event()

    async def wait() -> None:
        ticket = await store.work_ticket()
        waiting.set()
        await store.wait_for_work(ticket, timeout=60)

    waiter = asyncio.create_task(wait())
    await waiting.wait()
    await store.add_run(queued_run("run-1"))

    await asyncio.wait_for(waiter, PROMPTLY)
    assert waiter.done() and waiter.exception() is None


async def test_queue_depth_counts_queued_runs_by_priority(store: QueueStore) -> None:
    worker = await register(store)
    await store.add_run(queued_run("high-1", priority=TaskPriority.high))
    await store.add_run(queued_run("low-1", priority=TaskPriority.low))
    await store.add_run(
        queued_run("low-2", priority=TaskPriority.low, execute_after=T0 + timedelta(hours=1))
    )
    assert await store.queue_depths() == {
        TaskPriority.high: 1,
        TaskPriority.medium: 0,
        TaskPriority.low: 2,
    }
    await lease(store, worker, at(1))  # takes high-1 then low-1 (low-2 is not due)
    await update(store, "low-2", finish(at(2), TaskState.aborted))
    assert await store.queue_depths() == {
        TaskPriority.high: 0,
        TaskPriority.medium: 0,
        TaskPriority.low: 0,
    }
