"""Channels between fluid processes: calls spread over every address a name resolves to."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest_asyncio

from fluid.service.channel import open_channel

PING = "/test.Replica/Ping"


def replica_service(name: str, answered: Counter[str]) -> grpc.GenericRpcHandler[bytes, bytes]:
    """A one-method service (raw bytes both ways) that counts the calls it answered."""

    async def ping(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        answered[name] += 1
        return request

    return grpc.method_handlers_generic_handler(
        "test.Replica", {"Ping": grpc.unary_unary_rpc_method_handler(ping)}
    )


@pytest_asyncio.fixture
async def replicas() -> AsyncIterator[tuple[list[int], Counter[str]]]:
    answered: Counter[str] = Counter()
    servers, ports = [], []
    for name in ("a", "b"):
        server = grpc.aio.server()
        server.add_generic_rpc_handlers([replica_service(name, answered)])
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
        ping = channel.unary_unary(PING, request_serializer=None, response_deserializer=None)
        # Bounded: round robin uses a replica once its connection is up, which on
        # loopback is at once; a channel pinned to one address never reaches the other.
        for _ in range(200):
            await ping(b"", timeout=5)
            if len(answered) == 2:
                break
            await asyncio.sleep(0.005)

    assert set(answered) == {"a", "b"}
