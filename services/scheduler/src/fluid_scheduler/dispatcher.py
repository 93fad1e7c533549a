"""The dispatcher as the scheduler sees it: where scheduled tasks are listed and runs queued.

Both go through the SDK ``Client``, the same calls any user makes: ``ListTasks`` and
idempotent ``QueueRun`` / ``QueueRuns`` (bulk) calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from fluid.scheduler.client import Client
from fluid.scheduler.models import RunRequest

from .domain.records import ScheduledTask


class DispatcherTasks:
    """``TaskSource`` and ``SlotQueuer`` over the SDK client."""

    def __init__(
        self, client: Client, randomizers: Mapping[str, Callable[[], float]] | None = None
    ) -> None:
        self.client = client
        self.randomizers = dict(randomizers or {})

    async def scheduled_tasks(self) -> list[ScheduledTask]:
        return [
            ScheduledTask(
                name=info.definition.name,
                schedule=info.definition.schedule,
                enabled=info.enabled,
                randomize=self.randomizers.get(info.definition.name),
            )
            for info in await self.client.list_tasks()
            if info.definition.schedule is not None
        ]

    async def queue_request(self, request: RunRequest) -> str:
        queued = await self.client.queue_run(
            request.task,
            request.params,
            priority=request.priority,
            run_id=request.run_id,
            idempotency_key=request.idempotency_key,
            execute_after=request.execute_after,
            from_run_id=request.from_run_id,
        )
        return queued.id

    async def queue_requests(self, requests: Sequence[RunRequest]) -> list[str]:
        return [run.id for run in await self.client.queue_requests(requests)]
