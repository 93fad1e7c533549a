"""Concurrent ``queue()`` calls of one client share ``QueueRuns`` calls.

A caller alone (or among few) sends its own ``QueueRun`` at once: coalescing adds no wait.
Once ``IN_FLIGHT`` calls are on the wire, the requests that arrive meanwhile gather and
leave together, as one ``QueueRuns`` per batch, when a call in flight returns: a burst of
a thousand ``queue()`` calls costs tens of round trips instead of a thousand.

Each caller still gets the answer its own ``QueueRun`` would have given. ``QueueRuns`` is
all-or-nothing, so a batch refused for one of its requests (INVALID_ARGUMENT, NOT_FOUND,
RESOURCE_EXHAUSTED, ...) is sent again request by request; the requests carry run ids made
by the client, so one the batch had queued is returned, not queued twice. Only requests
made in the same trace context share a batch (the call carries that context), and a client
forwarding its callers' tokens never coalesces, as each call carries its caller's token.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from fluid.service.telemetry import current_trace_context

from .limits import batches, limits
from .v1 import dispatcher_pb2

# Calls on the wire before new requests wait to share one: enough that a few concurrent
# callers never wait for each other, few enough that a burst batches.
IN_FLIGHT = 4

# A refusal of the batch that may concern only some of its requests: each is sent alone.
_PER_REQUEST = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)

Request = dispatcher_pb2.QueueRunRequest
Response = dispatcher_pb2.QueueRunResponse
SendOne = Callable[[Request], Awaitable[Response]]
SendMany = Callable[[list[Request]], Awaitable[list[Response]]]


@dataclass(slots=True)
class _Waiting:
    request: Request
    answer: asyncio.Future[Response]
    context: contextvars.Context


@dataclass
class QueueCoalescer:
    """Sends a client's QueueRun requests: alone while few are in flight, else together."""

    send_one: SendOne
    send_many: SendMany
    in_flight_limit: int = IN_FLIGHT
    # Requests waiting for a call, per trace context (a batch is sent in one).
    _waiting: dict[tuple[tuple[str, str], ...], list[_Waiting]] = field(default_factory=dict)
    _in_flight: int = 0
    _senders: set[asyncio.Task[None]] = field(default_factory=set)

    async def queue(self, request: Request) -> Response:
        """The dispatcher's answer to ``request``, as its own QueueRun would give it."""
        if self._in_flight < self.in_flight_limit and not self._waiting:
            self._in_flight += 1
            try:
                return await self.send_one(request)
            finally:
                self._in_flight -= 1
                self._send_waiting()
        trace = tuple(sorted(current_trace_context().items()))
        waiting = _Waiting(
            request, asyncio.get_running_loop().create_future(), contextvars.copy_context()
        )
        self._waiting.setdefault(trace, []).append(waiting)
        self._send_waiting()
        return await waiting.answer

    def _send_waiting(self) -> None:
        while self._waiting and self._in_flight < self.in_flight_limit:
            trace = next(iter(self._waiting))
            group = self._waiting[trace]
            batch = batches(
                group,
                lambda item: item.request.ByteSize() + 8,  # a repeated field's tag and length
                limits().batch_bytes,
                limits().queue_batch_runs,
            )[0]
            del group[: len(batch)]
            if not group:
                del self._waiting[trace]
            live = [item for item in batch if not item.answer.done()]  # cancelled callers
            if not live:
                continue
            self._in_flight += 1
            # In the context of the batch's callers: the call carries their trace.
            sender = asyncio.get_running_loop().create_task(
                self._send(live), context=live[0].context
            )
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)

    async def _send(self, batch: list[_Waiting]) -> None:
        try:
            if len(batch) == 1:
                await _answer(batch[0], self.send_one(batch[0].request))
                return
            try:
                responses = await self.send_many([item.request for item in batch])
            except grpc.aio.AioRpcError as error:
                if error.code() not in _PER_REQUEST:
                    _fail(batch, error)
                    return
                await asyncio.gather(
                    *(_answer(item, self.send_one(item.request)) for item in batch)
                )
                return
            except BaseException as error:
                _fail(batch, error)
                if not isinstance(error, Exception):
                    raise  # cancelled (the client closing): the task ends as asked
                return
            for item, response in zip(batch, responses, strict=True):
                if not item.answer.done():
                    item.answer.set_result(response)
        finally:
            self._in_flight -= 1
            self._send_waiting()


async def _answer(item: _Waiting, call: Awaitable[Response]) -> None:
    try:
        response = await call
    except Exception as error:
        if not item.answer.done():
            item.answer.set_exception(error)
        return
    if not item.answer.done():
        item.answer.set_result(response)


def _fail(batch: list[_Waiting], error: BaseException) -> None:
    for item in batch:
        if not item.answer.done():
            if isinstance(error, asyncio.CancelledError):
                item.answer.cancel()
            else:
                item.answer.set_exception(error)
