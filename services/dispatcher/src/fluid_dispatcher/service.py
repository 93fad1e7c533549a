"""Composition root of the dispatcher: store, use cases, servicer, background loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import grpc

from fluid.scheduler.v1 import dispatcher_pb2, dispatcher_pb2_grpc
from fluid.service.host import ServiceContext
from fluid.service.loops import cancel_and_wait

from .api.servicer import DispatcherServicer
from .domain.dispatcher import HOUSEKEEPING_LOOP, Dispatcher, DispatcherConfig
from .domain.ports import QueueStore
from .history_forwarder import LOOP_NAME, HistoryForwarder
from .settings import DispatcherSettings
from .store.memory import MemoryQueueStore
from .store.redis import RedisQueueStore

logger = logging.getLogger("fluid.dispatcher")


def open_store(settings: DispatcherSettings) -> QueueStore:
    """The queue store the broker URL names."""
    # The settings refused any other scheme: not memory:// is a Redis URL.
    if settings.in_memory:
        return MemoryQueueStore(outbox=settings.history_forward, max_runs=settings.memory_max_runs)
    return RedisQueueStore(
        settings.broker_url,
        namespace=settings.broker_namespace,
        outbox=settings.history_forward,
        max_connections=settings.broker_max_connections,
    )


class DispatcherService:
    name = "dispatcher"

    def __init__(self, context: ServiceContext, settings: DispatcherSettings | None = None) -> None:
        self.settings = settings or DispatcherSettings()
        self.context = context
        self.store = open_store(self.settings)
        self.dispatcher = Dispatcher(
            self.store,
            DispatcherConfig(
                lease_ttl=timedelta(seconds=self.settings.lease_ttl_seconds),
                finished_run_ttl=timedelta(seconds=self.settings.finished_run_ttl_seconds),
                max_lease_wait=timedelta(seconds=self.settings.max_lease_wait_seconds),
            ),
        )
        self._background: list[asyncio.Task[None]] = []

    def attach(self, server: grpc.aio.Server) -> list[str]:
        dispatcher_pb2_grpc.add_DispatcherServiceServicer_to_server(
            DispatcherServicer(self.dispatcher), server
        )
        return [dispatcher_pb2.DESCRIPTOR.services_by_name["DispatcherService"].full_name]

    async def start(self) -> None:
        self._background.append(
            asyncio.create_task(
                self.dispatcher.run_housekeeping(self.settings.housekeeping_interval_seconds),
                name=HOUSEKEEPING_LOOP,
            )
        )
        if self.settings.history_forward:
            forwarder = HistoryForwarder(
                self.store,
                self.context.clients.history,
                self.dispatcher.masked,
                self.settings.history_batch_size,
                health=self.dispatcher.health,
                token=self.context.clients.token.get_secret_value(),
            )
            self._background.append(asyncio.create_task(forwarder.run(), name=LOOP_NAME))

    async def stop(self, grace: float) -> None:
        if self.settings.history_forward:
            # Give the forwarder a moment to deliver the last snapshots before it stops.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(grace, 5.0)):
                    # Acks happen in the forwarder's task; nothing signals "empty".
                    while await self.store.outbox_size():  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
        await cancel_and_wait(self._background)
        await self.store.close()


def create_service(context: ServiceContext) -> DispatcherService:
    return DispatcherService(context)
