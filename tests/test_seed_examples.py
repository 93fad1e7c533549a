"""Every code example of the seed's docs (../shared/seed-docs) runs on fluid, and does what
its docs promise. The examples live in ``seed_examples`` as written there; the changes
each needed are in its module docstring. task-scheduler-api.txt's one example line,
``from fastapi.scheduler import TaskScheduler``, is this module's ``fluid.scheduler``
import (its ``fastapi`` is a typo of the docs); the source listings there are the seed's
code, not examples, and the methods they document are tested in test_task_manager.
One example is not here:

- task-queue-v1.txt's ``Broker.from_url("redis://...")``: the queue is the dispatcher's,
  so a task manager has no broker to configure (``task_manager.broker.queue_length()``
  is kept); the Redis URL is the dispatcher's ``FLUID_BROKER_URL``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from types import ModuleType

import httpx
import pytest
from seed_examples import (
    abort,
    concurrency,
    cpu_process,
    cron,
    db_report,
    io_and_cpu,
    params,
    say_hi,
    scheduled,
    timeouts,
)

from fluid.scheduler import (
    InvalidArgumentError,
    Run,
    TaskConsumer,
    TaskScheduler,
    TaskState,
)
from fluid.scheduler.db import TaskDbPlugin
from fluid.scheduler.http import task_manager_fastapi

from embedded import manager_environment

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module", autouse=True)
def embedded_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """History in a file of this module's own; cpu processes import the tests' modules."""
    folder = tmp_path_factory.mktemp("seed")
    with manager_environment(folder, SEED_DATASTORE=str(folder)):
        yield


@asynccontextmanager
async def consuming(
    *modules: ModuleType, kind: type[TaskConsumer] = TaskConsumer
) -> AsyncIterator[TaskConsumer]:
    manager = kind()
    for module in modules:
        manager.register_from_module(module)
    async with manager:
        yield manager


async def stored(manager: TaskConsumer, task: str, state: TaskState) -> list[Run]:
    """The runs of ``task`` history has in ``state`` (it is written after the fact)."""
    for _ in range(150):
        runs = (await manager.client.list_runs(task=task, state=state)).runs
        if runs:
            return runs
        await asyncio.sleep(0.1)
    return []


async def test_tasks_and_task_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    async with consuming(say_hi) as manager:
        run = await manager.queue_and_wait("say_hi", timeout=20)
        assert run.state is TaskState.success
    async with consuming(params) as manager:
        run = await manager.queue_and_wait("say_hi", timeout=20, name="Ada")
        assert run.state is TaskState.success
        with pytest.raises(InvalidArgumentError, match="name"):
            await manager.queue("say_hi")
    printed = capsys.readouterr().out
    assert "Hi!" in printed and "Hi Ada!" in printed


async def test_an_io_task_hands_its_data_to_a_cpu_bound_one() -> None:
    async with consuming(io_and_cpu) as manager:
        fetched = await manager.queue_and_wait("fecth_data", timeout=20)
        assert fetched.state is TaskState.success, fetched.error
        # The child was queued without await; it read the data from its own process,
        # then its queue of the docs' misspelt "fetch_data" failed it.
        (child,) = await stored(manager, "heavy_calculation", TaskState.failure)
        assert child.from_run_id == fetched.id
        assert child.error is not None and "fetch_data" in child.error.message


async def test_scheduled_tasks_fire_every_second_and_by_crontab() -> None:
    async with consuming(scheduled, kind=TaskScheduler) as manager:
        assert await stored(manager, "scheduled", TaskState.success)
        assert await stored(manager, "scheduled_ok", TaskState.success)
    async with consuming(cron, kind=TaskScheduler) as manager:
        for _ in range(100):  # the scheduler learns the tasks from the dispatcher
            schedules = (await manager.client.list_schedules()).schedules
            if schedules:
                break
            await asyncio.sleep(0.1)
        (schedule,) = schedules
        # Minutes default to "*", as in the seed: every minute of the even hours.
        assert schedule.task == "scheduled" and "* */2 * * *" in schedule.description


async def test_timeouts_and_concurrency_are_the_tasks_own() -> None:
    async with consuming(timeouts, concurrency) as manager:
        tasks = {
            info.definition.name: info.definition for info in await manager.client.list_tasks()
        }
        assert tasks["slow_io_task"].timeout_seconds == 300
        assert tasks["slow_cpu_task"].timeout_seconds == 300 and tasks["slow_cpu_task"].cpu_bound
        assert tasks["fetch_data"].max_concurrency == 5
        assert tasks["heavy_calculation"].max_concurrency == 2
        for name in tasks:
            run = await manager.queue_and_wait(name, timeout=30)
            assert run.state is TaskState.success, (name, run.error)


async def test_a_task_aborts_itself_and_abort_handlers_hear_it() -> None:
    async with consuming(abort) as manager:
        heard: list[str] = []

        async def on_abort(run: Run) -> None:
            heard.append(run.id)

        manager.register_async_handler("aborted.audit", on_abort)
        stopped = await manager.queue_and_wait("conditional_work", timeout=20)
        assert stopped.state is TaskState.aborted and stopped.reason == "precondition not met"
        done = await manager.queue_and_wait("conditional_work", timeout=20, proceed=True)
        assert done.state is TaskState.success
        assert heard == [stopped.id]


async def test_a_cpu_bound_task_knows_it_is_in_its_subprocess() -> None:
    async with consuming(cpu_process) as manager:
        run = await manager.queue_and_wait("where", timeout=30)
        assert run.state is TaskState.success and run.result == "subprocess"


async def test_the_db_plugin_from_a_scheduler_and_from_a_task(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # plugins-db.txt's first example, with TaskDbPlugin's db (a CrudDB there) as None.
    task_manager = TaskScheduler()
    task_manager.register_from_module(db_report)
    task_manager.with_plugin(TaskDbPlugin(None))
    app = task_manager_fastapi(task_manager)
    async with task_manager:
        mine = await task_manager.queue_and_wait("my-task", timeout=20)
        assert await stored(task_manager, "my-task", TaskState.success)
        report = await task_manager.queue_and_wait("report", timeout=20)
        assert report.state is TaskState.success, report.error
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            page = (await http.get("/tasks-history", params={"task": "my-task"})).json()
            assert mine.id in [run["id"] for run in page["data"]]
            assert "my-task" in [task["name"] for task in (await http.get("/tasks")).json()]
    assert f"{mine.id} success" in capsys.readouterr().out
