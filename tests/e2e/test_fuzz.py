"""A bounded fuzz of every dispatcher and history RPC: no mutated request gets UNKNOWN or
INTERNAL (a bug in servicer code), and the system works afterwards.

``FLUID_FUZZ_REQUESTS`` sets how many requests (``make fuzz`` sends many more) and
``FLUID_FUZZ_SEED`` the seed, printed on failure so a failing run can be replayed.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from fluid.scheduler import Client, TaskState
from fluid.scheduler.v1 import dispatcher_pb2, dispatcher_pb2_grpc, history_pb2, history_pb2_grpc
from fluid.service.channel import open_channel
from fluid.service.host import Host

from fuzzing import Mutator

REQUESTS = int(os.environ.get("FLUID_FUZZ_REQUESTS", "3000"))
SEED = int(os.environ.get("FLUID_FUZZ_SEED", "20261202"))
# Calls in flight at once: enough to interleave, few enough for 2 cores.
CONCURRENCY = 16
# What a servicer answering a caller's request must never say.
BUGS = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}
# Task names of the running workers: the fuzz must not re-register or disable them,
# or the check afterwards would test the fuzz, not the system.
PROTECTED = {"say_hi", "echo", "explode"}


def _protect(request: Message) -> None:
    if isinstance(request, dispatcher_pb2.RegisterWorkerRequest):
        for definition in request.tasks:
            if definition.name in PROTECTED:
                definition.name = f"fuzz_{definition.name}"
    if isinstance(request, dispatcher_pb2.SetTaskEnabledRequest) and request.name in PROTECTED:
        request.name = f"fuzz_{request.name}"


@pytest.fixture
async def channel(system: Host) -> AsyncIterator[grpc.aio.Channel]:
    opened = open_channel(system.address)
    yield opened
    await opened.close(None)


def _rpcs(channel: grpc.aio.Channel) -> list[tuple[str, Callable[..., Any], type[Message], bool]]:
    """(name, stub method, request type, server-streaming) of every RPC of both services."""
    found = []
    for module, stub in (
        (dispatcher_pb2, dispatcher_pb2_grpc.DispatcherServiceStub(channel)),
        (history_pb2, history_pb2_grpc.HistoryServiceStub(channel)),
    ):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                request_type = getattr(module, method.input_type.name, None)
                if request_type is None:  # a request type defined in another file
                    continue
                found.append(
                    (
                        f"{service.name}.{method.name}",
                        getattr(stub, method.name),
                        request_type,
                        method.server_streaming,
                    )
                )
    return found


# Streams that stay open until the caller leaves (a feed of changes): reaching the
# deadline is how a healthy one ends, so it counts as OK, after a short one.
FEEDS = frozenset({"DispatcherService.WatchRuns"})


async def _send(
    name: str, call: Callable[..., Any], request: Message, streaming: bool
) -> grpc.StatusCode:
    feed = name in FEEDS
    try:
        if streaming:
            async for _ in call(request, timeout=0.05 if feed else 1.0):
                pass
        else:
            await call(request, timeout=1.0)
    except grpc.aio.AioRpcError as error:
        if feed and error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
            return grpc.StatusCode.OK
        return error.code()
    return grpc.StatusCode.OK


async def test_mutated_requests_get_precise_answers_and_the_system_still_works(
    channel: grpc.aio.Channel, client: Client
) -> None:
    rpcs = _rpcs(channel)
    assert len(rpcs) >= 17, [name for name, *_ in rpcs]
    mutator = Mutator(SEED, strings=[*PROTECTED, "fuzz-worker", "run-1", "0-1", "1"])
    answers: Counter[tuple[str, str]] = Counter()
    bugs: list[str] = []

    async def one(index: int) -> None:
        name, call, request_type, streaming = rpcs[index % len(rpcs)]
        request = request_type()
        mutator.mutate(request)
        _protect(request)
        code = await _send(name, call, request, streaming)
        answers[(name, code.name)] += 1
        if code in BUGS:
            bugs.append(f"{name} -> {code.name}: {str(request)[:300]!r}")

    for start in range(0, REQUESTS, CONCURRENCY):
        await asyncio.gather(*(one(i) for i in range(start, min(start + CONCURRENCY, REQUESTS))))

    by_code: Counter[str] = Counter()
    for (_, code), count in answers.items():
        by_code[code] += count
    print(f"fuzz: {REQUESTS} requests, seed {SEED}, answers {dict(by_code.most_common())}")
    assert not bugs, f"seed {SEED}: {len(bugs)} bug answers, first: {bugs[:3]}"
    assert sum(answers.values()) == REQUESTS
    run = await client.queue_and_wait("say_hi", name="after the fuzz", timeout=20)
    assert run.state is TaskState.success
    assert (await client.queue_status()).degraded_loops == ()
