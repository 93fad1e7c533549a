"""A run's whole life through real gRPC servers: queue, execute, report, store."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest

from fluid.scheduler import (
    Client,
    InvalidArgumentError,
    NotFoundError,
    TaskState,
)
from fluid.scheduler.v1 import dispatcher_pb2, dispatcher_pb2_grpc
from fluid.service.channel import open_channel
from fluid.service.host import Host

from history_polling import stored_run


async def test_say_hi_succeeds_with_its_result(client: Client) -> None:
    run = await client.queue_and_wait("say_hi", name="Ada", timeout=10)
    assert run.state is TaskState.success
    assert run.result == "Hi Ada!"
    assert run.start is not None and run.end is not None and run.queued is not None
    assert run.queued <= run.start <= run.end
    stored = await stored_run(client, run.id, TaskState.success)
    assert stored.result == "Hi Ada!"
    assert stored.params == {"name": "Ada"}
    page = await client.list_runs(task="say_hi")
    assert [item.id for item in page.runs] == [run.id]


async def test_a_raising_task_fails_with_its_error(client: Client) -> None:
    run = await client.queue_and_wait("explode", message="kaput", timeout=10)
    assert run.state is TaskState.failure
    assert run.error is not None
    assert run.error.type == "ValueError"
    assert run.error.message == "kaput"
    assert "raise ValueError" in run.error.traceback


async def test_failures_are_retried_under_the_retry_policy(client: Client) -> None:
    run = await client.queue_and_wait("explode_with_retries", timeout=10)
    assert run.state is TaskState.failure
    assert run.attempt == 2
    assert run.error is not None and run.error.message == "boom on attempt 2"


async def test_abort_from_inside_ends_aborted_and_is_not_retried(client: Client) -> None:
    run = await client.queue_and_wait("give_up", timeout=10)
    assert run.state is TaskState.aborted
    assert run.reason == "nothing to do"
    assert run.attempt == 0


async def test_a_run_past_its_timeout_fails(client: Client) -> None:
    run = await client.queue_and_wait("too_slow", timeout=10)
    assert run.state is TaskState.failure
    assert run.error is not None and run.error.type == "TimeoutError"


async def test_max_concurrency_one_rate_limits_the_second_run(client: Client) -> None:
    first, second = await asyncio.gather(
        client.queue("exclusive", seconds=0.5), client.queue("exclusive", seconds=0.5)
    )
    done = await asyncio.gather(
        client.wait(first.id, timeout=10), client.wait(second.id, timeout=10)
    )
    assert {run.state for run in done} == {TaskState.success, TaskState.rate_limited}
    limited = next(run for run in done if run.state is TaskState.rate_limited)
    assert "max_concurrency=1" in limited.reason


async def test_a_child_run_records_its_parent_and_root(client: Client) -> None:
    top = await client.queue_and_wait("grandparent", timeout=10)
    middle = await client.wait(top.result, timeout=10)
    leaf = await client.wait(middle.result, timeout=10)
    assert middle.from_run_id == top.id and middle.root_run_id == top.id
    assert leaf.from_run_id == middle.id and leaf.root_run_id == top.id
    assert leaf.state is TaskState.success


async def test_an_unknown_task_is_refused_with_not_found(client: Client) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        await client.queue("nope")


async def test_invalid_params_are_refused_naming_the_field(system: Host, client: Client) -> None:
    with pytest.raises(InvalidArgumentError, match=r"params\.name"):
        await client.queue("say_hi", nme="Ada")
    # The raw status code, as another language's client sees it.
    async with open_channel(system.address) as channel:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.QueueRun(dispatcher_pb2.QueueRunRequest(task="say_hi"))
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "params.name" in (caught.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.QueueRun(dispatcher_pb2.QueueRunRequest(task="nope"))
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    # Nothing reached a worker or history, and the system still works.
    assert (await client.list_runs(task="say_hi")).runs == []
    assert (
        await client.queue_and_wait("say_hi", name="Ada", timeout=10)
    ).state is TaskState.success


async def test_a_non_json_result_fails_the_run(client: Client) -> None:
    run = await client.queue_and_wait("not_json", timeout=10)
    assert run.state is TaskState.failure
    assert run.error is not None and "not JSON" in run.error.message


async def test_an_external_abort_stops_a_running_run(client: Client) -> None:
    run = await client.queue("sleeper", seconds=30)
    async for update in client.watch(run.id):
        if update.state is TaskState.running:
            break
    await client.abort(run.id, "changed my mind")
    done = await client.wait(run.id, timeout=10)
    assert done.state is TaskState.aborted
    assert done.reason == "changed my mind"


async def test_an_external_abort_of_a_queued_run_is_immediate(client: Client) -> None:
    from datetime import timedelta

    from fluid.scheduler.run import utcnow

    run = await client.queue_run(
        "say_hi", {"name": "later"}, execute_after=utcnow() + timedelta(hours=1)
    )
    aborted = await client.abort(run.id)
    assert aborted.state is TaskState.aborted


async def test_a_caller_supplied_run_id_queues_once(client: Client) -> None:
    first = await client.queue_run("say_hi", {"name": "once"}, run_id="order-42")
    again = await client.queue_run("say_hi", {"name": "once"}, run_id="order-42")
    assert first.id == again.id == "order-42"
    done = await client.wait("order-42", timeout=10)
    assert done.state is TaskState.success


async def test_tasks_are_listed_with_their_workers(client: Client) -> None:
    tasks = {info.name: info for info in await client.list_tasks()}
    assert tasks["say_hi"].workers == 1
    assert tasks["say_hi"].enabled
    # cpu-bound tasks are for the cpu-runner: the io-worker does not register them.
    assert "crunch" not in tasks


async def test_a_disabled_task_ends_aborted(client: Client) -> None:
    await client.set_task_enabled("say_hi", False)
    run = await client.queue_and_wait("say_hi", name="nobody", timeout=10)
    assert run.state is TaskState.aborted
    assert "disabled" in run.reason
    await client.set_task_enabled("say_hi", True)
    assert (
        await client.queue_and_wait("say_hi", name="Ada", timeout=10)
    ).state is TaskState.success


async def test_many_runs_are_queued_in_one_call(client: Client) -> None:
    runs = await client.queue_many("say_hi", [{"name": f"n{i}"} for i in range(30)], batch_size=7)
    assert len({run.id for run in runs}) == 30
    done = [await client.wait(run.id, timeout=10) for run in runs]
    assert [run.result for run in done] == [f"Hi n{i}!" for i in range(30)]


async def test_a_bulk_enqueue_with_one_bad_entry_queues_nothing(client: Client) -> None:
    with pytest.raises(InvalidArgumentError, match=r"runs\[1\].*params\.name"):
        await client.queue_many("say_hi", [{"name": "ok"}, {"nme": "bad"}])
    assert [task for task in await client.list_tasks() if task.running] == []
    assert (await client.list_runs(task="say_hi")).runs == []


async def test_plugins_in_task_modules_receive_lifecycle_events(client: Client) -> None:
    from sample_tasks import Notifications

    tagged = await client.queue_and_wait("tagged", timeout=10)
    untagged = await client.queue_and_wait("say_hi", name="Ada", timeout=10)
    events = Notifications.events
    assert ("running", tagged.id) in events and ("running", untagged.id) in events
    # Both handlers of success fire; the billing one keeps only runs tagged billing.
    assert ("success.billing", tagged.id) in events
    assert ("success.billing", untagged.id) not in events
    assert {("success.audit", tagged.id), ("success.audit", untagged.id)} <= set(events)


async def test_what_a_run_logs_is_kept_as_its_output(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # as `fluid serve` logs (pytest's root logger warns only)
    run = await client.queue_and_wait("chatty", timeout=10)
    assert run.state is TaskState.success
    assert run.output_tail[-2:] == (
        f"INFO fluid.task.chatty: starting {run.id}",
        "WARNING fluid.task.chatty: almost done",
    )


async def test_concurrent_queue_calls_are_each_answered_for_their_own_request(
    client: Client,
) -> None:
    # Far more calls than the client sends at once: most travel in shared QueueRuns, and
    # the one invalid request fails alone.
    calls = [client.queue("say_hi", name=f"n{i}") for i in range(300)]
    calls.insert(150, client.queue("say_hi", nom="typo"))
    results = await asyncio.gather(*calls, return_exceptions=True)
    refused = results.pop(150)
    assert isinstance(refused, InvalidArgumentError)
    assert "name" in str(refused)
    assert all(not isinstance(run, BaseException) for run in results)
    runs = [run for run in results if not isinstance(run, BaseException)]
    assert len({run.id for run in runs}) == 300
    assert [run.params["name"] for run in runs] == [f"n{i}" for i in range(300)]
    done = await asyncio.gather(*(client.wait(run.id, timeout=60) for run in runs[::50]))
    assert {run.state for run in done} == {TaskState.success}
