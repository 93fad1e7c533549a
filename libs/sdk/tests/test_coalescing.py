"""Concurrent queue() calls of one client share QueueRuns calls, each caller answered alone."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from opentelemetry import context as otel_context

from fluid.scheduler.coalescing import IN_FLIGHT, QueueCoalescer
from fluid.scheduler.v1 import dispatcher_pb2, run_pb2
from fluid.service.telemetry import context_from

Request = dispatcher_pb2.QueueRunRequest
Response = dispatcher_pb2.QueueRunResponse


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, None)


class Dispatcher:
    """Answers QueueRun(s) after a pause, the way the real one does for these tests."""

    def __init__(self, refuse: str = "", batch_error: grpc.StatusCode | None = None) -> None:
        self.refuse = refuse  # the run id QueueRun refuses (and so any batch holding it)
        self.batch_error = batch_error
        self.singles: list[str] = []
        self.batches: list[list[str]] = []

    def answer(self, request: Request) -> Response:
        return Response(run=run_pb2.Run(id=request.run_id, task=request.task), created=True)

    async def one(self, request: Request) -> Response:
        self.singles.append(request.run_id)
        await asyncio.sleep(0.01)
        if request.run_id == self.refuse:
            raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "params: bad")
        return self.answer(request)

    async def many(self, requests: list[Request]) -> list[Response]:
        self.batches.append([request.run_id for request in requests])
        await asyncio.sleep(0.01)
        if self.batch_error is not None:
            raise rpc_error(self.batch_error, "down")
        if any(request.run_id == self.refuse for request in requests):
            raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "runs[3].params: bad")
        return [self.answer(request) for request in requests]


def requests(count: int) -> list[Request]:
    return [Request(task="t", run_id=f"run-{i}") for i in range(count)]


async def test_a_lone_call_is_sent_at_once_as_its_own_queue_run() -> None:
    dispatcher = Dispatcher()
    coalescer = QueueCoalescer(dispatcher.one, dispatcher.many)
    for request in requests(3):
        assert (await coalescer.queue(request)).run.id == request.run_id
    assert dispatcher.singles == ["run-0", "run-1", "run-2"]
    assert dispatcher.batches == []


async def test_a_burst_shares_few_calls_and_each_caller_gets_its_own_run() -> None:
    dispatcher = Dispatcher()
    coalescer = QueueCoalescer(dispatcher.one, dispatcher.many)
    sent = requests(200)
    answers = await asyncio.gather(*(coalescer.queue(request) for request in sent))
    assert [answer.run.id for answer in answers] == [request.run_id for request in sent]
    calls = len(dispatcher.singles) + len(dispatcher.batches)
    assert calls < 20
    assert len(dispatcher.singles) == IN_FLIGHT  # the first ones did not wait
    together = [run_id for batch in dispatcher.batches for run_id in batch]
    assert sorted(dispatcher.singles + together) == sorted(r.run_id for r in sent)


async def test_a_batch_refused_for_one_request_is_sent_again_one_by_one() -> None:
    dispatcher = Dispatcher(refuse="run-50")
    coalescer = QueueCoalescer(dispatcher.one, dispatcher.many)
    results = await asyncio.gather(
        *(coalescer.queue(request) for request in requests(100)), return_exceptions=True
    )
    failed = [i for i, result in enumerate(results) if isinstance(result, Exception)]
    assert failed == [50]
    error = results[50]
    assert isinstance(error, grpc.aio.AioRpcError)
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "params: bad")
    assert all(
        isinstance(result, Response) and result.run.id == f"run-{i}"
        for i, result in enumerate(results)
        if i != 50
    )


async def test_a_batch_that_cannot_be_sent_fails_each_of_its_callers_once() -> None:
    dispatcher = Dispatcher(batch_error=grpc.StatusCode.UNAVAILABLE)
    coalescer = QueueCoalescer(dispatcher.one, dispatcher.many)
    results = await asyncio.gather(
        *(coalescer.queue(request) for request in requests(50)), return_exceptions=True
    )
    unavailable = [
        r for r in results if isinstance(r, grpc.aio.AioRpcError) and r.code().name == "UNAVAILABLE"
    ]
    assert len(unavailable) == 50 - len(dispatcher.singles)
    # Nothing was sent again one by one: the dispatcher is down for all of them alike.
    assert len(dispatcher.singles) == IN_FLIGHT


async def test_requests_of_different_traces_never_share_a_batch() -> None:
    dispatcher = Dispatcher()
    coalescer = QueueCoalescer(dispatcher.one, dispatcher.many)
    traces = [f"00-{i:032x}-{i:016x}-01" for i in range(1, 3)]

    async def queue_in(trace: str, request: Request) -> str:
        token = otel_context.attach(context_from({"traceparent": trace}))
        try:
            await coalescer.queue(request)
        finally:
            otel_context.detach(token)
        return trace

    sent = requests(60)
    owner = {request.run_id: traces[i % 2] for i, request in enumerate(sent)}
    await asyncio.gather(*(queue_in(owner[r.run_id], r) for r in sent))
    assert dispatcher.batches
    for batch in dispatcher.batches:
        assert len({owner[run_id] for run_id in batch}) == 1


async def test_a_cancelled_caller_leaves_the_others_answered() -> None:
    dispatcher = Dispatcher()
    coalescer = QueueCoalescer(dispatcher.one, dispatcher.many)
    calls = [asyncio.ensure_future(coalescer.queue(request)) for request in requests(40)]
    await asyncio.sleep(0)
    calls[20].cancel()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[20], asyncio.CancelledError)
    assert all(isinstance(r, Response) for i, r in enumerate(results) if i != 20)


@pytest.mark.parametrize("count", [1, IN_FLIGHT, IN_FLIGHT + 1])
async def test_nothing_is_left_waiting(count: int) -> None:
    dispatcher = Dispatcher()
    coalescer = QueueCoalescer(dispatcher.one, dispatcher.many)
    await asyncio.gather(*(coalescer.queue(request) for request in requests(count)))
    assert not coalescer._waiting
    assert coalescer._in_flight == 0


async def test_a_batch_that_fails_unexpectedly_fails_its_callers_and_nothing_else() -> None:
    async def broken(requests: list[Request]) -> list[Response]:
        raise ValueError("cannot encode")

    dispatcher = Dispatcher()
    coalescer = QueueCoalescer(dispatcher.one, broken)
    results = await asyncio.gather(
        *(coalescer.queue(request) for request in requests(20)), return_exceptions=True
    )
    failed = [r for r in results if isinstance(r, ValueError)]
    assert len(failed) == 20 - IN_FLIGHT
    await asyncio.sleep(0)
    assert not coalescer._senders  # every sender ended, none with an exception left unread
