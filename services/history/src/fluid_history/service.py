"""The history service as the host runs it: composition of settings, store and servicer."""

from __future__ import annotations

import grpc

from fluid.scheduler.v1 import history_pb2_grpc
from fluid.service.host import Service, ServiceContext

from .api.servicer import SERVICE_NAME, HistoryServicer
from .domain.history import RunHistory
from .settings import HistorySettings
from .store.base import RunStore
from .store.sql import SqlRunStore
from .tracing import RecordSpans


class HistoryService:
    """Serves HistoryService on the host's server, backed by a run store."""

    name = "history"

    def __init__(self, store: RunStore) -> None:
        self._store = store
        self._history = RunHistory(store, on_recorded=[RecordSpans()])

    def attach(self, server: grpc.aio.Server) -> list[str]:
        history_pb2_grpc.add_HistoryServiceServicer_to_server(
            HistoryServicer(self._history), server
        )
        return [SERVICE_NAME]

    async def start(self) -> None:
        # Until this returns the host reports NOT_SERVING and the store answers UNAVAILABLE.
        await self._store.open()

    async def stop(self, grace: float) -> None:
        # Requests already holding a connection finish on it; new ones get UNAVAILABLE.
        await self._store.close()


def create_service(context: ServiceContext) -> Service:
    """Entry point of the ``fluid.services`` group; history calls no other service."""
    return HistoryService(SqlRunStore(HistorySettings().database_url))
