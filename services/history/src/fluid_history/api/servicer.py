"""The HistoryService gRPC servicer; domain errors become statuses in the host's interceptor."""

from __future__ import annotations

from typing import Any

import grpc

from fluid.scheduler import wire
from fluid.scheduler.limits import batches, limits
from fluid.scheduler.v1 import history_pb2, history_pb2_grpc, run_pb2
from fluid_history.domain.cursor import Cursor
from fluid_history.domain.history import RunHistory

from .convert import query_from_pb, record_response_to_pb, snapshots_from_pb

SERVICE_NAME: str = history_pb2.DESCRIPTOR.services_by_name["HistoryService"].full_name

Context = grpc.aio.ServicerContext[Any, Any]


def _run_size(message: run_pb2.Run) -> int:
    return message.ByteSize()


class HistoryServicer(history_pb2_grpc.HistoryServiceServicer):
    def __init__(self, history: RunHistory) -> None:
        self._history = history

    async def RecordRuns(
        self, request: history_pb2.RecordRunsRequest, context: Context
    ) -> history_pb2.RecordRunsResponse:
        runs, unreadable = snapshots_from_pb(request.runs)
        result = await self._history.record(runs, unreadable=unreadable)
        return record_response_to_pb(result)

    async def ListRuns(
        self, request: history_pb2.ListRunsRequest, context: Context
    ) -> history_pb2.ListRunsResponse:
        page = await self._history.list_runs(query_from_pb(request))
        runs = [wire.run_to_pb(run) for run in page.runs]
        kept = batches(runs, _run_size, limits().batch_bytes)[0] if runs else []
        # A page of large runs is cut to what one message holds; the cursor then points
        # just past the last run sent, so the caller pages on and misses none.
        next_cursor = page.next_cursor
        if len(kept) < len(runs):
            next_cursor = Cursor.after(page.runs[len(kept) - 1])
        return history_pb2.ListRunsResponse(
            runs=kept, next_cursor=next_cursor.encode() if next_cursor else ""
        )

    async def GetRun(
        self, request: history_pb2.HistoryServiceGetRunRequest, context: Context
    ) -> history_pb2.HistoryServiceGetRunResponse:
        run = await self._history.get_run(request.run_id)
        return history_pb2.HistoryServiceGetRunResponse(run=wire.run_to_pb(run))
