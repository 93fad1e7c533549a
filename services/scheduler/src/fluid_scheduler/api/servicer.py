"""gRPC face of the scheduler: ListSchedules, converted in the SDK's wire module."""

from __future__ import annotations

from typing import Any

import grpc

from fluid.scheduler import wire
from fluid.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc

from ..domain.firing import SlotFirer

Context = grpc.aio.ServicerContext[Any, Any]


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServiceServicer):
    def __init__(self, firer: SlotFirer) -> None:
        self.firer = firer

    async def ListSchedules(
        self, request: scheduler_pb2.ListSchedulesRequest, context: Context
    ) -> scheduler_pb2.ListSchedulesResponse:
        return wire.scheduler_status_to_pb(await self.firer.status())
