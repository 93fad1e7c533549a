"""Composition root of the scheduler: store, leadership, dispatcher client, loops, servicer."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from datetime import timedelta

import grpc

from fluid.scheduler.client import Client
from fluid.scheduler.loader import load_tasks
from fluid.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from fluid.service.host import ServiceContext
from fluid.service.loops import cancel_and_wait

from .api.servicer import SchedulerServicer
from .dispatcher import DispatcherTasks
from .domain.firing import PASS_LOOP, REFRESH_LOOP, FiringConfig, SlotFirer
from .domain.leadership import Leadership, SystemClock
from .domain.ports import SchedulerStore
from .settings import SchedulerSettings
from .store.memory import MemorySchedulerStore
from .store.redis import RedisSchedulerStore


def open_store(settings: SchedulerSettings) -> SchedulerStore:
    """The scheduler store the broker URL names (the same URL as the dispatcher's)."""
    if settings.in_memory:
        return MemorySchedulerStore()
    return RedisSchedulerStore(settings.broker_url, namespace=settings.broker_namespace)


def replica_id() -> str:
    return f"scheduler-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class SchedulerService:
    name = "scheduler"

    def __init__(self, context: ServiceContext, settings: SchedulerSettings | None = None) -> None:
        self.settings = settings = settings or SchedulerSettings()
        # Task modules are optional here: they only give the tasks' randomize callables.
        modules = list(context.task_modules) or settings.task_modules
        randomizers = {
            name: task.randomize
            for name, task in (load_tasks(modules) if modules else {}).items()
            if task.randomize is not None
        }
        self.store = open_store(settings)
        self.client = Client(settings=context.clients)
        dispatcher = DispatcherTasks(self.client, randomizers)
        clock = SystemClock()
        self.firer = SlotFirer(
            store=self.store,
            source=dispatcher,
            queuer=dispatcher,
            leadership=Leadership(
                self.store,
                replica_id(),
                timedelta(seconds=settings.scheduler_lease_ttl_seconds),
                clock,
            ),
            clock=clock,
            config=FiringConfig(
                misfire_grace=timedelta(seconds=settings.scheduler_misfire_grace_seconds),
                call_timeout=settings.scheduler_call_timeout_seconds,
                tick=settings.scheduler_tick_seconds,
                max_concurrent_queues=settings.scheduler_max_concurrent_queues,
                summary_interval=settings.scheduler_summary_interval_seconds,
            ),
        )
        self._loops: list[asyncio.Task[None]] = []

    def attach(self, server: grpc.aio.Server) -> list[str]:
        scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(
            SchedulerServicer(self.firer), server
        )
        return [scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"].full_name]

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(
                self.firer.refresh_forever(self.settings.scheduler_refresh_seconds),
                name=REFRESH_LOOP,
            ),
            asyncio.create_task(self.firer.run(), name=PASS_LOOP),
        ]

    async def stop(self, grace: float) -> None:
        await cancel_and_wait(self._loops)
        # A standby takes the released lease at its next pass instead of waiting a TTL out.
        await self.firer.leadership.resign()
        await self.client.close()
        await self.store.close()


def create_service(context: ServiceContext) -> SchedulerService:
    return SchedulerService(context)
