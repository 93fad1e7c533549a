"""The history service as the host runs it: composition of settings, store and servicer."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from fluid.scheduler.errors import UnavailableError
from fluid.scheduler.v1 import history_pb2_grpc
from fluid.service.host import Service, ServiceContext
from fluid.service.loops import cancel_and_wait

from .api.servicer import SERVICE_NAME, HistoryServicer
from .domain.history import RunHistory
from .domain.ports import RunStore
from .domain.retention import RETENTION_LOOP, Retention
from .metrics import IngestLag
from .settings import HistorySettings
from .store.engine import database_errors
from .store.sql import SqlRunStore
from .tracing import RecordSpans

logger = logging.getLogger("fluid.history")


class HistoryService:
    """Serves HistoryService on the host's server, backed by a run store."""

    name = "history"

    def __init__(
        self,
        store: RunStore,
        retention: Retention | None = None,
        *,
        # No default here: HistorySettings.history_database_wait_seconds holds it.
        database_wait_seconds: float,
    ) -> None:
        self._store = store
        self._database_wait = database_wait_seconds
        self._history = RunHistory(store, on_recorded=[RecordSpans(), IngestLag()])
        self._retention = retention
        self._retention_task: asyncio.Task[None] | None = None

    def attach(self, server: grpc.aio.Server) -> list[str]:
        history_pb2_grpc.add_HistoryServiceServicer_to_server(
            HistoryServicer(self._history), server
        )
        return [SERVICE_NAME]

    async def start(self) -> None:
        # Until this returns the host reports NOT_SERVING and the store answers UNAVAILABLE.
        # A database that is not up yet (both starting together) is waited for, not fatal.
        deadline = time.monotonic() + self._database_wait
        delay = 0.5
        while True:
            try:
                async with database_errors():
                    await self._store.open()
                break
            except UnavailableError as error:
                if time.monotonic() + delay > deadline:
                    raise
                logger.warning(
                    "history database not reachable (%s); retrying in %.1fs", error, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        if self._retention is not None:
            self._retention_task = asyncio.create_task(self._retention.run(), name=RETENTION_LOOP)

    async def stop(self, grace: float) -> None:
        task, self._retention_task = self._retention_task, None
        if task is not None:
            await cancel_and_wait([task])
        # Requests already holding a connection finish on it; new ones get UNAVAILABLE.
        await self._store.close()


def create_service(context: ServiceContext) -> Service:
    """Entry point of the ``fluid.services`` group; history calls no other service."""
    settings = HistorySettings()
    store = SqlRunStore(settings.database_url, migrate=settings.history_migrate_on_start)
    retention = (
        Retention(
            store,
            days=settings.history_retention_days,
            batch_size=settings.history_retention_batch_size,
            interval=settings.history_retention_interval_seconds,
        )
        if settings.history_retention_days > 0
        else None
    )
    return HistoryService(
        store, retention, database_wait_seconds=settings.history_database_wait_seconds
    )
