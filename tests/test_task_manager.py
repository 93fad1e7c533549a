"""TaskManager, TaskConsumer and TaskScheduler as the seed's users write them: an embedded
system in the process, its handlers, deps, inline execution and children queued
without await."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import manager_tasks
import pytest
import pytest_asyncio

from fluid.scheduler import (
    Client,
    Event,
    InvalidArgumentError,
    NotFoundError,
    Run,
    TaskConsumer,
    TaskManager,
    TaskPriority,
    TaskState,
)
from fluid.scheduler.db import TaskHistoryQuery, get_db_plugin
from fluid.scheduler.lifecycle import AsyncHandler
from fluid.scheduler.run import utcnow
from fluid.service.host import Host
from fluid.service.settings import ServerSettings

from embedded import manager_environment

# The async tests share the module's embedded system; execute_sync needs no loop at all.
in_module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module", autouse=True)
def embedded_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """History in a file of this module's own; cpu processes import the tests' modules."""
    folder = tmp_path_factory.mktemp("manager")
    with manager_environment(folder):
        yield


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def consumer() -> AsyncIterator[TaskConsumer]:
    manager = TaskConsumer()
    manager.register_from_module(manager_tasks)
    seen: list[tuple[str, str]] = []
    manager.state.seen = seen

    def remember(tag: str) -> AsyncHandler:
        async def handler(run: Run) -> None:
            seen.append((f"{run.state}.{tag}", run.id))

        return handler

    manager.register_async_handler("success.audit", remember("audit"))
    manager.register_async_handler(Event(TaskState.success, "db"), remember("db"))
    manager.register_async_handler("queued", remember("queued"))
    manager.register_async_handler("rate_limited", remember("limit"))
    manager.register_async_handler("aborted.audit", remember("audit"))
    async with manager:
        yield manager


@in_module_loop
async def test_a_consumer_runs_its_tasks_in_an_embedded_system(consumer: TaskConsumer) -> None:
    run = await consumer.queue_and_wait("hello", timeout=20, name="Ada")
    assert run.state is TaskState.success and run.result == "Hello Ada!"
    # Two handlers of success under their own tags both fire, and queued fires here.
    seen = consumer.state.seen
    assert ("success.audit", run.id) in seen and ("success.db", run.id) in seen
    assert ("queued.queued", run.id) in seen
    stored = await consumer.client.get_run(run.id)
    assert stored.params == {"name": "Ada"}


@in_module_loop
async def test_a_child_queued_without_await_runs(consumer: TaskConsumer) -> None:
    parent = await consumer.queue_and_wait("fan_out", timeout=20)
    assert parent.state is TaskState.success, parent.error
    page = await consumer.client.list_runs(task="hello", limit=50)
    # History is written after the fact: the child is live in the dispatcher at once.
    for _ in range(100):
        children = [run for run in page.runs if run.from_run_id == parent.id]
        if children:
            break
        await asyncio.sleep(0.1)
        page = await consumer.client.list_runs(task="hello", limit=50)
    assert children, "the child queued without await never reached history"
    child = await consumer.client.wait(children[0].id, timeout=20)
    assert child.state is TaskState.success


@in_module_loop
async def test_deps_reach_io_and_cpu_tasks(consumer: TaskConsumer) -> None:
    io = await consumer.queue_and_wait("io_deps", timeout=20)
    assert io.state is TaskState.success and io.result == os.getpid()
    cpu = await consumer.queue_and_wait("cpu_deps", timeout=30)
    # The cpu-bound run's own process made its deps from the module's provider.
    assert cpu.state is TaskState.success, cpu.error
    assert cpu.result != os.getpid()


@in_module_loop
async def test_concurrent_runs_are_counted_while_they_execute(consumer: TaskConsumer) -> None:
    napping = await consumer.queue("nap", seconds=1.0)
    for _ in range(100):
        if consumer.num_concurrent_tasks_for("nap"):
            break
        await asyncio.sleep(0.05)
    assert consumer.num_concurrent_tasks_for("nap") == 1
    assert consumer.num_concurrent_tasks >= 1
    status = await consumer.status()
    assert status["running"].get("nap") == 1
    assert set(await consumer.broker.queue_length()) == {"high", "medium", "low"}
    await consumer.client.wait(napping.id, timeout=20)
    assert consumer.num_concurrent_tasks_for("nap") == 0


async def heard(consumer: TaskConsumer, event: tuple[str, str]) -> bool:
    """Whether the consumer's handlers heard ``event``, waiting a little for it: the
    dispatcher announces its decisions with a worker's next lease call."""
    for _ in range(100):
        if event in consumer.state.seen:
            return True
        await asyncio.sleep(0.05)
    return False


@in_module_loop
async def test_the_dispatchers_own_decisions_reach_the_handlers(consumer: TaskConsumer) -> None:
    # Two runs of a max_concurrency=1 task at once: one runs, the other is rate-limited.
    first, second = await asyncio.gather(consumer.queue("single"), consumer.queue("single"))
    ends = [await consumer.client.wait(run.id, timeout=20) for run in (first, second)]
    (limited,) = [run for run in ends if run.state is TaskState.rate_limited]
    assert await heard(consumer, ("rate_limited.limit", limited.id))
    # A queued run aborted before any worker took it.
    later = await consumer.client.queue_run(
        "hello", {"name": "Ed"}, execute_after=utcnow() + timedelta(minutes=5)
    )
    aborted = await consumer.client.abort(later.id, "not needed")
    assert aborted.state is TaskState.aborted
    assert await heard(consumer, ("aborted.audit", later.id))
    # Each is announced once: nothing is heard twice.
    await asyncio.sleep(0.5)
    assert consumer.state.seen.count(("rate_limited.limit", limited.id)) == 1


@in_module_loop
async def test_execute_runs_inline_through_the_same_states(consumer: TaskConsumer) -> None:
    before = len(consumer.state.seen)
    run = await consumer.execute("hello", name="Bo")
    assert run.state is TaskState.success and run.result == "Hello Bo!"
    assert ("success.audit", run.id) in consumer.state.seen[before:]
    with pytest.raises(InvalidArgumentError, match="name"):
        await consumer.execute("hello")
    with pytest.raises(NotFoundError, match="not registered"):
        await consumer.execute("nope")


@in_module_loop
async def test_a_task_reads_history_through_the_db_plugin(consumer: TaskConsumer) -> None:
    hello = await consumer.queue_and_wait("hello", timeout=20, name="Di")
    plugin = get_db_plugin(consumer)
    for _ in range(100):  # history is written after the fact
        query = TaskHistoryQuery(task="hello", state="success", params='{"name": "Di"}')
        page = await plugin.get_history(query)
        if [run.id for run in page.data] == [hello.id]:
            break
        await asyncio.sleep(0.1)
    assert [run.id for run in page.data] == [hello.id]
    assert (await plugin.get_run(hello.id)).state is TaskState.success
    with pytest.raises(NotFoundError):
        await plugin.get_run("0" * 32)
    report = await consumer.queue_and_wait("report", timeout=20)
    assert report.state is TaskState.success, report.error
    assert hello.id in report.result


def test_execute_sync_outside_an_event_loop() -> None:
    manager = TaskManager()
    manager.register_task(manager_tasks.hello)
    run = manager.execute_sync("hello", name="Cy")
    assert run.state is TaskState.success and run.result == "Hello Cy!"


def test_register_from_dict_skips_private_names() -> None:
    manager = TaskManager()
    manager.register_from_dict({"hello": manager_tasks.hello, "_nap": manager_tasks.nap, "x": 1})
    assert set(manager.registry) == {"hello"}
    manager.register_from_module(manager_tasks)
    assert {"hello", "nap", "fan_out", "cpu_deps"} <= set(manager.registry)


def test_a_manager_not_started_says_so() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = TaskManager().client


@in_module_loop
async def test_sync_queue_from_a_thread_and_callbacks(consumer: TaskConsumer) -> None:
    before = {run.id for run in (await consumer.client.list_runs(task="nap", limit=100)).runs}
    thread = threading.Thread(target=consumer.sync_priority_queue, args=("nap",))
    thread.start()
    thread.join()
    ticks: list[int] = []

    async def tick() -> None:
        ticks.append(len(ticks))

    consumer.register_callback(tick, 0.01, periodic=0.05)
    for _ in range(100):
        runs = (await consumer.client.list_runs(task="nap", limit=100)).runs
        queued = [run for run in runs if run.id not in before]
        if queued and len(ticks) >= 3:
            break
        await asyncio.sleep(0.1)
    assert queued and queued[0].priority is TaskPriority.high
    assert len(ticks) >= 3


@in_module_loop
async def test_run_serves_until_gracefully_stopped() -> None:
    manager = TaskManager()
    closed = asyncio.Event()

    @contextlib.asynccontextmanager
    async def resource() -> AsyncIterator[str]:
        yield "conn"
        closed.set()

    serving = asyncio.create_task(manager.run())
    for _ in range(100):
        if manager.is_running():
            break
        await asyncio.sleep(0.05)
    assert await manager.enter_async_context(resource()) == "conn"
    manager.gracefully_stop()
    await asyncio.wait_for(serving, 30)
    assert closed.is_set() and not manager.is_running() and not manager.is_stopping()


@in_module_loop
async def test_a_consumer_joins_a_running_system_and_services_get_module_deps() -> None:
    host = Host(
        ["history", "dispatcher", "io-worker"],
        settings=ServerSettings(port=0, shutdown_grace_seconds=1),
        task_modules=["manager_tasks"],
    )
    await host.start()
    try:
        # The io-worker service's own manager made the module's deps in this process.
        async with Client(host.address) as client:
            served = await client.queue_and_wait("io_deps", timeout=20)
            assert served.state is TaskState.success and served.result == os.getpid()
        joined = TaskConsumer(address=host.address)
        joined.register_task(manager_tasks.hello)
        async with joined:
            assert joined.config.address == host.address
            run = await joined.queue_and_wait("hello", timeout=20, name="Jo")
            assert run.state is TaskState.success and run.result == "Hello Jo!"
    finally:
        await host.stop()
