"""The host reports NOT_SERVING until its services have started."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fluid.service import host as host_module
from fluid.service.host import Host, ServiceContext
from fluid.service.settings import ClientSettings, ServerSettings


class SlowService:
    """A service whose start waits until the test releases it (a migrating database)."""

    name = "slow"

    def __init__(self) -> None:
        self.starting = asyncio.Event()
        self.release = asyncio.Event()

    def attach(self, server: grpc.aio.Server) -> list[str]:
        return []

    async def start(self) -> None:
        self.starting.set()
        await self.release.wait()

    async def stop(self, grace: float) -> None:
        return None


class SlowEntryPoint:
    def __init__(self, service: SlowService) -> None:
        self.service = service

    def load(self) -> Any:
        return lambda context: self.service


async def health(address: str) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


async def test_health_is_not_serving_while_services_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = SlowService()
    monkeypatch.setattr(
        host_module, "available_services", lambda: {"slow": SlowEntryPoint(service)}
    )
    host = Host(["slow"], settings=ServerSettings(port=0))
    starting = asyncio.create_task(host.start())
    try:
        await asyncio.wait_for(service.starting.wait(), 10)
        assert await health(host.address) == "NOT_SERVING"
        service.release.set()
        await starting
        assert await health(host.address) == "SERVING"
    finally:
        await host.stop()


def test_a_service_context_names_the_other_services() -> None:
    context = ServiceContext(clients=ClientSettings(address="a:1"))
    assert context.clients.dispatcher == "a:1" and context.clients.history == "a:1"
