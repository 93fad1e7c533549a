"""One bad input never stops anything else: each test sends one, then checks that the
bad one got a precise answer (or a terminal state saying why) and the others went on."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, struct_pb2

from fluid.scheduler import Client, TaskState
from fluid.scheduler.errors import AlreadyExistsError, InvalidArgumentError, ResourceExhaustedError
from fluid.scheduler.limits import limits
from fluid.scheduler.v1 import dispatcher_pb2, dispatcher_pb2_grpc, task_pb2
from fluid.service.channel import open_channel
from fluid.service.host import Host
from fluid_history.testing import postgres_schema

from embedded import embedded_system
from history_polling import all_stored, stored_run


@pytest.fixture
async def stub(system: Host) -> AsyncIterator[dispatcher_pb2_grpc.DispatcherServiceAsyncStub]:
    """The dispatcher without the SDK in between, to send what the SDK would refuse."""
    channel = open_channel(system.address)
    yield dispatcher_pb2_grpc.DispatcherServiceStub(channel)
    await channel.close(None)


async def _refused(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"deeper": value}
    return value


async def test_a_too_large_result_fails_its_run_and_the_worker_goes_on(client: Client) -> None:
    size = limits().result_bytes + 1024
    big = await client.queue_and_wait("echo", text="x", times=size, timeout=20)

    assert big.state is TaskState.failure
    assert big.error is not None and big.error.type == "ResultTooLargeError"
    assert big.params == {"text": "x", "times": size}
    after = await client.queue_and_wait("say_hi", name="Ada", timeout=20)
    assert after.state is TaskState.success
    stored = await stored_run(client, big.id, TaskState.failure)
    assert stored.error is not None and stored.error.type == "ResultTooLargeError"
    await stored_run(client, after.id, TaskState.success)


async def test_a_nul_in_a_result_is_kept_storable(client: Client) -> None:
    run = await client.queue_and_wait("echo", text="a", codepoints=[0, 0xDCFF], timeout=20)

    assert run.state is TaskState.success
    assert run.result == "a\ufffd\ufffd"
    assert (await stored_run(client, run.id, TaskState.success)).result == "a\ufffd\ufffd"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"text": "a\x00b"}, "params.text"),
        ({"text\x00": "a"}, "params"),
        ({"text": "x", "padding": "p" * (300 * 1024)}, "params"),
        # Deeper than the limit, yet shallow enough for protobuf to parse the request.
        (_nested(limits().json_depth + 5), "params.deeper"),
    ],
    ids=["nul-value", "nul-key", "too-large", "too-deep"],
)
async def test_params_that_would_poison_a_batch_are_refused_at_the_door(
    client: Client,
    stub: dispatcher_pb2_grpc.DispatcherServiceAsyncStub,
    params: dict[str, Any],
    field: str,
) -> None:
    struct = struct_pb2.Struct()
    struct.update(params)
    error = await _refused(
        stub.QueueRun(dispatcher_pb2.QueueRunRequest(task="echo", params=struct))
    )

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith(field)
    assert (await client.queue_and_wait("say_hi", name="Ada", timeout=20)).state is (
        TaskState.success
    )


async def test_nan_and_out_of_range_times_are_invalid_arguments(
    stub: dispatcher_pb2_grpc.DispatcherServiceAsyncStub,
) -> None:
    nan = struct_pb2.Struct()
    nan.update({"text": "x"})
    nan.fields["times"].number_value = math.nan
    far = dispatcher_pb2.QueueRunRequest(task="echo")
    far.execute_after.seconds = 10**15

    for request, field in (
        (dispatcher_pb2.QueueRunRequest(task="echo", params=nan), "params"),
        (far, "execute_after"),
    ):
        error = await _refused(stub.QueueRun(request))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert (error.details() or "").startswith(field)
    for request, field in (
        (
            dispatcher_pb2.QueueRunRequest(task="echo", idempotency_key="k" * 100_000),
            "idempotency_key",
        ),
        (dispatcher_pb2.QueueRunRequest(task="echo", from_run_id="r" * 100_000), "from_run_id"),
        (dispatcher_pb2.QueueRunRequest(task="t" * 100_000), "task"),
    ):
        error = await _refused(stub.QueueRun(request))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert (error.details() or "").startswith(field)


async def test_an_idempotency_key_of_another_task_is_already_exists(client: Client) -> None:
    first = await client.queue_run("say_hi", {"name": "Ada"}, idempotency_key="nightly")

    with pytest.raises(AlreadyExistsError) as raised:
        await client.queue_run("echo", {"text": "x"}, idempotency_key="nightly")

    assert str(raised.value).startswith("idempotency_key: already used by run")
    assert first.id in str(raised.value) and "say_hi" in str(raised.value)
    again = await client.queue_run("say_hi", {"name": "Ada"}, idempotency_key="nightly")
    assert again.id == first.id
    with pytest.raises(AlreadyExistsError, match=r"^run_id: already used"):
        await client.queue_run("echo", {"text": "x"}, run_id=first.id)


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        (task_pb2.TaskDefinition(name="bad", timeout_seconds=math.inf), "tasks[0].timeout_seconds"),
        (task_pb2.TaskDefinition(name="bad", timeout_seconds=math.nan), "tasks[0].timeout_seconds"),
        (
            task_pb2.TaskDefinition(name="bad", retry=task_pb2.RetryPolicy(backoff=math.inf)),
            "tasks[0].retry.backoff",
        ),
        (
            task_pb2.TaskDefinition(
                name="bad", retry=task_pb2.RetryPolicy(wait=duration_pb2.Duration(seconds=10**15))
            ),
            "tasks[0].retry.wait",
        ),
        (task_pb2.TaskDefinition(name="bad", max_concurrency=10**9), "tasks[0].max_concurrency"),
        (task_pb2.TaskDefinition(name="n" * 10_000), "tasks[0].name"),
    ],
    ids=["inf-timeout", "nan-timeout", "inf-backoff", "huge-wait", "huge-concurrency", "long-name"],
)
async def test_a_registration_that_breaks_invariants_is_refused(
    client: Client,
    stub: dispatcher_pb2_grpc.DispatcherServiceAsyncStub,
    definition: task_pb2.TaskDefinition,
    field: str,
) -> None:
    error = await _refused(
        stub.RegisterWorker(
            dispatcher_pb2.RegisterWorkerRequest(
                worker_id="fake-worker",
                kind=dispatcher_pb2.WORKER_KIND_IO,
                tasks=[definition],
                concurrency=1,
            )
        )
    )

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith(field)
    assert (await client.queue_and_wait("say_hi", name="Ada", timeout=20)).state is (
        TaskState.success
    )


async def test_a_bulk_enqueue_of_large_params_reaches_history_whole(client: Client) -> None:
    padding = "p" * 9 * 1024
    runs = await client.queue_many("echo", [{"text": "ok", "padding": padding}] * 2000)

    await all_stored(client, "echo", {run.id for run in runs}, TaskState.success, timeout=120)
    status = await client.queue_status()
    assert status.dead_letters == 0


async def test_a_bulk_enqueue_larger_than_a_message_is_cut_by_bytes(client: Client) -> None:
    # Each run's params are just under the limit; together far over one gRPC message.
    padding = "p" * (limits().params_bytes - 100)
    count = limits().message_bytes // len(padding) + 10

    runs = await client.queue_many("echo", [{"padding": padding}] * count)

    assert len(runs) == count
    await all_stored(client, "echo", {run.id for run in runs}, TaskState.success, timeout=120)


async def test_the_queue_status_shows_dead_letters_and_the_outbox(client: Client) -> None:
    status = await client.queue_status()
    letters, cursor = await client.dead_letters()

    assert (status.dead_letters, status.oldest_dead_letter, letters, cursor) == (0, None, [], "")
    assert status.degraded_loops == ()


async def test_dead_letter_calls_refuse_malformed_arguments(
    stub: dispatcher_pb2_grpc.DispatcherServiceAsyncStub,
) -> None:
    calls: list[tuple[Awaitable[Any], str]] = [
        (stub.ListDeadLetters(dispatcher_pb2.ListDeadLettersRequest(limit=501)), "limit"),
        (stub.ListDeadLetters(dispatcher_pb2.ListDeadLettersRequest(cursor="x")), "cursor"),
        (
            stub.ListDeadLetters(
                dispatcher_pb2.ListDeadLettersRequest(cursor="99999999999999999999-1")
            ),
            "cursor",
        ),
        (stub.RetryDeadLetters(dispatcher_pb2.RetryDeadLettersRequest()), "ids"),
        (stub.DropDeadLetters(dispatcher_pb2.DropDeadLettersRequest(ids=["nope"])), "ids[0]"),
        (
            stub.DropDeadLetters(dispatcher_pb2.DropDeadLettersRequest(ids=["1"], all=True)),
            "ids",
        ),
    ]
    for call, field in calls:
        error = await _refused(call)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert (error.details() or "").startswith(field)


async def test_a_catastrophic_pattern_cannot_block_the_dispatcher(
    client: Client, stub: dispatcher_pb2_grpc.DispatcherServiceAsyncStub
) -> None:
    schema = {
        "type": "object",
        "properties": {"word": {"type": "string", "pattern": r"^(\w+\s?)+$"}},
    }
    await stub.RegisterWorker(
        dispatcher_pb2.RegisterWorkerRequest(
            worker_id="redos-worker",
            kind=dispatcher_pb2.WORKER_KIND_IO,
            tasks=[task_pb2.TaskDefinition(name="redos", params_schema=json.dumps(schema))],
            concurrency=1,
        )
    )
    # With a backtracking engine this value takes longer than the universe has left.
    evil = "a" * 50_000 + "!"

    with pytest.raises(InvalidArgumentError, match=r"params\.word"):
        await client.queue_run("redos", {"word": evil})

    assert (await client.queue_and_wait("say_hi", name="Ada", timeout=20)).state is (
        TaskState.success
    )


async def test_on_postgresql_a_nul_is_refused_in_params_and_kept_in_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with postgres_schema("fluid_poison") as schema:
        database_url = schema.url.render_as_string(hide_password=False)
        async with (
            embedded_system(monkeypatch, database_url=database_url, broker_url="memory://") as host,
            Client(host.address) as client,
        ):
            with pytest.raises(InvalidArgumentError, match=r"params\.text: holds a NUL"):
                await client.queue_run("echo", {"text": "a\x00"})
            odd = await client.queue_and_wait("echo", text="a", codepoints=[0], timeout=20)
            plain = await client.queue_and_wait("say_hi", name="Ada", timeout=20)

            assert (await stored_run(client, odd.id, TaskState.success)).result == "a\ufffd"
            await stored_run(client, plain.id, TaskState.success)
            assert (await client.queue_status()).dead_letters == 0


async def test_max_queued_pushes_back_at_the_door_and_frees_room_as_runs_leave(
    client: Client,
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    waiting = [await client.queue_run("bounded", {}, execute_after=later) for _ in range(3)]

    with pytest.raises(ResourceExhaustedError, match="task bounded has 3 runs waiting"):
        await client.queue_run("bounded", {}, execute_after=later)
    with pytest.raises(ResourceExhaustedError):
        await client.queue_many("bounded", [{}, {}])

    await client.abort(waiting[0].id)
    room = await client.queue_and_wait("bounded", timeout=20)
    assert room.state is TaskState.success
