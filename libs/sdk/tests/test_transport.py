"""Our channels against our servers (``Host``): keepalive pings welcome, bursts of calls
served, large messages carried, and idempotent calls retried through a server's absence."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from fluid.scheduler.client import Client
from fluid.scheduler.errors import UnavailableError
from fluid.scheduler.limits import MIB
from fluid.scheduler.models import RunRequest
from fluid.scheduler.v1 import (
    dispatcher_pb2,
    dispatcher_pb2_grpc,
    history_pb2,
    run_pb2,
    scheduler_pb2,
)
from fluid.service import channel as channel_module
from fluid.service import host as host_module
from fluid.service.channel import RETRIED_METHODS, open_channel
from fluid.service.host import Host
from fluid.service.settings import ServerSettings

Context = grpc.aio.ServicerContext[Any, Any]
ECHO = "/fluid.test.Echo/Echo"
CALLS_AT_ONCE = 2000


class EchoService:
    """Answers every request with itself (raw bytes both ways)."""

    name = "echo"

    def attach(self, server: grpc.aio.Server) -> list[str]:
        async def echo(request: bytes, context: Context) -> bytes:
            return request

        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "fluid.test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
                )
            ]
        )
        return []

    async def start(self) -> None:
        return None

    async def stop(self, grace: float) -> None:
        return None


class FakeDispatcher:
    """A DispatcherService whose first ``unavailable`` QueueRun(s)/WatchRun calls answer
    UNAVAILABLE (its store unreachable) after recording what they were asked."""

    name = "fake-dispatcher"

    def __init__(self, unavailable: int = 0) -> None:
        self.unavailable = unavailable
        self.queued: list[dispatcher_pb2.QueueRunRequest] = []
        self.batches: list[dispatcher_pb2.QueueRunsRequest] = []
        self.watches = 0

    async def _maybe_refuse(self, context: Context) -> None:
        if self.unavailable:
            self.unavailable -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "queue store unreachable")

    async def get_run(
        self, request: dispatcher_pb2.GetRunRequest, context: Context
    ) -> dispatcher_pb2.GetRunResponse:
        return dispatcher_pb2.GetRunResponse(run=queued_run(request.run_id))

    async def queue_run(
        self, request: dispatcher_pb2.QueueRunRequest, context: Context
    ) -> dispatcher_pb2.QueueRunResponse:
        self.queued.append(request)
        await self._maybe_refuse(context)
        return dispatcher_pb2.QueueRunResponse(run=queued_run(request.run_id), created=True)

    async def queue_runs(
        self, request: dispatcher_pb2.QueueRunsRequest, context: Context
    ) -> dispatcher_pb2.QueueRunsResponse:
        self.batches.append(request)
        await self._maybe_refuse(context)
        return dispatcher_pb2.QueueRunsResponse(
            runs=[
                dispatcher_pb2.QueueRunResponse(run=queued_run(item.run_id), created=True)
                for item in request.runs
            ]
        )

    async def watch_run(
        self, request: dispatcher_pb2.WatchRunRequest, context: Context
    ) -> AsyncIterator[dispatcher_pb2.WatchRunResponse]:
        self.watches += 1
        await self._maybe_refuse(context)
        yield dispatcher_pb2.WatchRunResponse(run=queued_run(request.run_id))

    def attach(self, server: grpc.aio.Server) -> list[str]:
        def unary(
            method: Callable[[Any, Context], Awaitable[Any]], request: Any
        ) -> grpc.RpcMethodHandler[Any, Any]:
            return grpc.unary_unary_rpc_method_handler(
                method,
                request_deserializer=request.FromString,
                response_serializer=lambda response: response.SerializeToString(),
            )

        handlers = {
            "GetRun": unary(self.get_run, dispatcher_pb2.GetRunRequest),
            "QueueRun": unary(self.queue_run, dispatcher_pb2.QueueRunRequest),
            "QueueRuns": unary(self.queue_runs, dispatcher_pb2.QueueRunsRequest),
            "WatchRun": grpc.unary_stream_rpc_method_handler(
                self.watch_run,
                request_deserializer=dispatcher_pb2.WatchRunRequest.FromString,
                response_serializer=lambda response: response.SerializeToString(),
            ),
        }
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("fluid.scheduler.v1.DispatcherService", handlers)]
        )
        return []

    async def start(self) -> None:
        return None

    async def stop(self, grace: float) -> None:
        return None


def queued_run(run_id: str) -> run_pb2.Run:
    return run_pb2.Run(id=run_id, task="say_hi", state=run_pb2.TASK_STATE_QUEUED)


class ServiceEntryPoint:
    def __init__(self, service: EchoService | FakeDispatcher) -> None:
        self.service = service

    def load(self) -> Any:
        return lambda context: self.service


@asynccontextmanager
async def serving(
    monkeypatch: pytest.MonkeyPatch, service: EchoService | FakeDispatcher, port: int = 0
) -> AsyncIterator[Host]:
    """A ``Host`` serving ``service`` alone, as `fluid serve` would."""
    monkeypatch.setattr(
        host_module, "available_services", lambda: {service.name: ServiceEntryPoint(service)}
    )
    host = Host([service.name], settings=ServerSettings(port=port, shutdown_grace_seconds=0))
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


def echo(channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(ECHO, request_serializer=None, response_deserializer=None)


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def wait_for_state(channel: grpc.aio.Channel, wanted: grpc.ChannelConnectivity) -> None:
    state = channel.get_state(try_to_connect=True)
    for _ in range(10):  # IDLE, CONNECTING, then the one wanted: a few changes at most
        if state is wanted:
            return
        await asyncio.wait_for(channel.wait_for_state_change(state), 10)
        state = channel.get_state()
    raise AssertionError(f"channel still {state.name}, not {wanted.name}")


async def test_keepalive_pings_of_our_channels_do_not_cost_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Channels and servers read the interval when they are made: a short one shows in
    # seconds what 20 s shows in minutes. gRPC pings at most once a second; a server with
    # gRPC's defaults answers the fourth ping on an idle connection (about 3 s) with
    # GOAWAY too_many_pings, and the channel leaves READY to reconnect.
    monkeypatch.setattr(channel_module, "KEEPALIVE_TIME_MS", 100)
    async with (
        serving(monkeypatch, EchoService()) as host,
        open_channel(host.address) as channel,
    ):
        assert await echo(channel)(b"hi", timeout=5) == b"hi"
        assert channel.get_state() is grpc.ChannelConnectivity.READY
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(channel.wait_for_state_change(grpc.ChannelConnectivity.READY), 5)
        assert await echo(channel)(b"still there", timeout=5) == b"still there"


async def test_a_burst_of_calls_from_one_channel_is_served_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With gRPC's default backlog (1000 calls not yet picked up by the server loop) a
    # tenth of such a burst ended CANCELLED.
    async with (
        serving(monkeypatch, EchoService()) as host,
        open_channel(host.address) as channel,
    ):
        call = echo(channel)
        replies = await asyncio.gather(
            *(call(str(n).encode(), timeout=60) for n in range(CALLS_AT_ONCE)),
            return_exceptions=True,
        )
    reports = Counter(
        reply.code().name if isinstance(reply, grpc.aio.AioRpcError) else "OK" for reply in replies
    )
    assert reports == {"OK": CALLS_AT_ONCE}
    assert replies == [str(n).encode() for n in range(CALLS_AT_ONCE)]


async def test_a_ten_mib_message_travels_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = bytes(range(256)) * (10 * MIB // 256)
    async with (
        serving(monkeypatch, EchoService()) as host,
        open_channel(host.address) as channel,
    ):
        assert await echo(channel)(payload, timeout=30) == payload


async def test_a_read_waits_out_a_server_that_is_down_at_the_first_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = unused_port()
    async with open_channel(f"127.0.0.1:{port}") as channel:
        getting = asyncio.ensure_future(
            dispatcher_pb2_grpc.DispatcherServiceStub(channel).GetRun(
                dispatcher_pb2.GetRunRequest(run_id="run-1"), timeout=30
            )
        )
        # The connection was refused, which fails the first attempt: the call waits for
        # its retry instead of ending UNAVAILABLE.
        await wait_for_state(channel, grpc.ChannelConnectivity.TRANSIENT_FAILURE)
        assert not getting.done()
        async with serving(monkeypatch, FakeDispatcher(), port=port):
            response = await getting
    assert response.run.id == "run-1"


async def test_a_retried_queue_run_asks_for_the_same_run(monkeypatch: pytest.MonkeyPatch) -> None:
    dispatcher = FakeDispatcher(unavailable=1)
    async with serving(monkeypatch, dispatcher) as host, Client(host.address) as client:
        run = await client.queue_run("say_hi", {"name": "ann"})
    first, retry = dispatcher.queued
    assert first.run_id
    assert retry == first
    assert run.id == first.run_id


async def test_a_retried_batch_keeps_every_run_id_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    dispatcher = FakeDispatcher(unavailable=1)
    async with serving(monkeypatch, dispatcher) as host, Client(host.address) as client:
        runs = await client.queue_requests(
            [
                RunRequest("say_hi", run_id="caller-made"),
                RunRequest("say_hi", idempotency_key="nightly-2024-01-01"),
                RunRequest("say_hi"),
                RunRequest("say_hi"),
            ]
        )
    first, retry = dispatcher.batches
    assert retry == first
    ids = [item.run_id for item in first.runs]
    assert ids[0] == "caller-made"
    assert first.runs[1].idempotency_key == "nightly-2024-01-01"
    assert all(ids) and len(set(ids)) == len(ids)  # one id per run, made by the SDK
    assert [run.id for run in runs] == ids


async def test_watching_a_run_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    dispatcher = FakeDispatcher(unavailable=1)
    async with serving(monkeypatch, dispatcher) as host, Client(host.address) as client:
        with pytest.raises(UnavailableError):
            async for _ in client.watch("run-1"):
                pass
    assert dispatcher.watches == 1


def test_every_retried_method_is_a_method_of_its_service() -> None:
    # A misspelt name would silently leave that call without retries.
    services = {
        service.full_name: {method.name for method in service.methods}
        for module in (dispatcher_pb2, history_pb2, scheduler_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
    }
    for service, methods in RETRIED_METHODS.items():
        assert set(methods) <= services[service], service
    # A stream, and calls whose retries are the worker's own loop.
    not_retried = {"WatchRun", "LeaseRuns", "ReportRuns"}
    assert not not_retried & set(RETRIED_METHODS["fluid.scheduler.v1.DispatcherService"])
