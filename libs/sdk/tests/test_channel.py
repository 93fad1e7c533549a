"""Channels between fluid processes: calls spread over every address a name resolves to."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import pytest_asyncio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from fluid.service.channel import open_channel

if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # generic only in the type stubs
    _ServerInterceptor = grpc.aio.ServerInterceptor


class CountingInterceptor(_ServerInterceptor):
    """Counts the calls one replica received."""

    def __init__(self, name: str, answered: Counter[str]) -> None:
        self.name = name
        self.answered = answered

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        self.answered[self.name] += 1
        return await continuation(handler_call_details)


@pytest_asyncio.fixture
async def replicas() -> AsyncIterator[tuple[list[int], Counter[str]]]:
    answered: Counter[str] = Counter()
    servers, ports = [], []
    for name in ("a", "b"):
        server = grpc.aio.server(interceptors=[CountingInterceptor(name, answered)])
        health_pb2_grpc.add_HealthServicer_to_server(
            health.aio.HealthServicer(),  # type: ignore[attr-defined]
            server,
        )
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        servers.append(server)
    try:
        yield ports, answered
    finally:
        for server in servers:
            await server.stop(None)


async def test_calls_go_round_every_address_of_the_name(
    replicas: tuple[list[int], Counter[str]],
) -> None:
    ports, answered = replicas
    # What a headless Service's name resolves to: one address per replica.
    target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)
    async with open_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        # Bounded: round robin uses a replica once its connection is up, which on
        # loopback is at once; a channel pinned to one address never reaches the other.
        for _ in range(200):
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            if len(answered) == 2:
                break
            await asyncio.sleep(0.005)

    assert set(answered) == {"a", "b"}
