"""gRPC face of the dispatcher: converts messages and calls the use cases, nothing more."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from fluid.scheduler import wire
from fluid.scheduler.errors import InvalidArgumentError, ResourceExhaustedError, UnavailableError
from fluid.scheduler.limits import limits
from fluid.scheduler.models import RunError, RunReport, RunRequest, TaskState
from fluid.scheduler.run import Run
from fluid.scheduler.v1 import dispatcher_pb2, dispatcher_pb2_grpc, run_pb2
from fluid.service.telemetry import caller_trace_context, new_trace_context

from ..domain.dispatcher import Dispatcher
from ..domain.records import Lease

logger = logging.getLogger("fluid.dispatcher")

Context = grpc.aio.ServicerContext[Any, Any]


@contextmanager
def _fields() -> Iterator[None]:
    """A field that fails conversion is the caller's mistake: INVALID_ARGUMENT."""
    try:
        yield
    except wire.WireError as error:
        raise InvalidArgumentError(str(error)) from None


@contextmanager
def _worker_call() -> Iterator[None]:
    """A full store refuses a worker's call for now, not the call itself: workers retry
    UNAVAILABLE as they are, while RESOURCE_EXHAUSTED tells them an item is too large."""
    try:
        yield
    except ResourceExhaustedError as error:
        raise UnavailableError(str(error)) from None


def _run_request(
    request: dispatcher_pb2.QueueRunRequest, caller_trace: dict[str, str]
) -> RunRequest:
    with _fields():
        return RunRequest(
            task=request.task,
            params=wire.dict_from_struct(request.params, "params"),
            priority=wire.priority_from_pb(request.priority),
            run_id=request.run_id,
            idempotency_key=request.idempotency_key,
            execute_after=(
                wire.datetime_from(request.execute_after, "execute_after")
                if request.HasField("execute_after")
                else None
            ),
            from_run_id=request.from_run_id,
            # The caller's trace (or the server span, a child of the caller's, while spans
            # are recorded): storing it makes the run's execution join that trace.
            trace_context=caller_trace or new_trace_context(),
        )


def _report(item: dispatcher_pb2.RunReport, field: str) -> tuple[RunReport, str]:
    """A report as the domain takes it; one that cannot be read fails its run with why."""
    try:
        return wire.report_from_pb(item, field), ""
    except wire.WireError as error:
        reason = str(error)
        return RunReport(TaskState.failure, error=RunError("ReportRejectedError", reason)), reason


class DispatcherServicer(dispatcher_pb2_grpc.DispatcherServiceServicer):
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    async def QueueRun(
        self, request: dispatcher_pb2.QueueRunRequest, context: Context
    ) -> dispatcher_pb2.QueueRunResponse:
        caller_trace = caller_trace_context(context.invocation_metadata())
        run, created = await self.dispatcher.queue_run(_run_request(request, caller_trace))
        return dispatcher_pb2.QueueRunResponse(run=wire.run_to_pb(run), created=created)

    async def QueueRuns(
        self, request: dispatcher_pb2.QueueRunsRequest, context: Context
    ) -> dispatcher_pb2.QueueRunsResponse:
        requests = []
        caller_trace = caller_trace_context(context.invocation_metadata())
        for index, item in enumerate(request.runs):
            try:
                requests.append(_run_request(item, caller_trace))
            except InvalidArgumentError as error:
                raise InvalidArgumentError(f"runs[{index}].{error}") from None
        queued = await self.dispatcher.queue_runs(requests)
        return dispatcher_pb2.QueueRunsResponse(
            runs=[
                dispatcher_pb2.QueueRunResponse(run=wire.run_to_pb(run), created=created)
                for run, created in queued
            ]
        )

    async def GetRun(
        self, request: dispatcher_pb2.GetRunRequest, context: Context
    ) -> dispatcher_pb2.GetRunResponse:
        run = await self.dispatcher.get_run(request.run_id)
        return dispatcher_pb2.GetRunResponse(run=wire.run_to_pb(run))

    async def AbortRun(
        self, request: dispatcher_pb2.AbortRunRequest, context: Context
    ) -> dispatcher_pb2.AbortRunResponse:
        run = await self.dispatcher.abort_run(request.run_id, request.reason)
        return dispatcher_pb2.AbortRunResponse(run=wire.run_to_pb(run))

    async def WatchRun(
        self, request: dispatcher_pb2.WatchRunRequest, context: Context
    ) -> AsyncIterator[dispatcher_pb2.WatchRunResponse]:
        async for run in self.dispatcher.watch_run(request.run_id):
            yield dispatcher_pb2.WatchRunResponse(run=wire.run_to_pb(run))

    async def WatchRuns(
        self, request: dispatcher_pb2.WatchRunsRequest, context: Context
    ) -> AsyncIterator[dispatcher_pb2.WatchRunsResponse]:
        async for run in self.dispatcher.watch_runs(list(request.tasks)):
            yield dispatcher_pb2.WatchRunsResponse(run=wire.run_to_pb(run))

    async def ListTasks(
        self, request: dispatcher_pb2.ListTasksRequest, context: Context
    ) -> dispatcher_pb2.ListTasksResponse:
        tasks = await self.dispatcher.list_tasks()
        return dispatcher_pb2.ListTasksResponse(
            tasks=[wire.task_info_to_pb(info) for info in tasks]
        )

    async def SetTaskEnabled(
        self, request: dispatcher_pb2.SetTaskEnabledRequest, context: Context
    ) -> dispatcher_pb2.SetTaskEnabledResponse:
        info = await self.dispatcher.set_task_enabled(request.name, request.enabled)
        return dispatcher_pb2.SetTaskEnabledResponse(task=wire.task_info_to_pb(info))

    async def GetQueueStatus(
        self, request: dispatcher_pb2.GetQueueStatusRequest, context: Context
    ) -> dispatcher_pb2.GetQueueStatusResponse:
        return wire.queue_status_to_pb(await self.dispatcher.queue_status())

    async def RegisterWorker(
        self, request: dispatcher_pb2.RegisterWorkerRequest, context: Context
    ) -> dispatcher_pb2.RegisterWorkerResponse:
        with _worker_call():
            with _fields():
                kind = wire.worker_kind_from_pb(request.kind, "kind")
                definitions = [
                    wire.definition_from_pb(item, f"tasks[{index}]")
                    for index, item in enumerate(request.tasks)
                ]
                started = (
                    wire.datetime_from(request.started, "started")
                    if request.HasField("started")
                    else None
                )
            await self.dispatcher.register_worker(
                request.worker_id, kind, definitions, request.concurrency, started
            )
            return dispatcher_pb2.RegisterWorkerResponse(
                lease_ttl=wire.duration(self.dispatcher.config.lease_ttl)
            )

    async def LeaseRuns(
        self, request: dispatcher_pb2.LeaseRunsRequest, context: Context
    ) -> dispatcher_pb2.LeaseRunsResponse:
        with _worker_call():
            with _fields():
                wait = wire.timedelta_from(request.wait, "wait")
            leased = await self.dispatcher.lease_runs(request.worker_id, request.max_runs, wait)
            leases = await self._leases(request.worker_id, leased)
            settled = await self._settled(
                request.worker_id, limits().batch_bytes - sum(item.ByteSize() for item in leases)
            )
            return dispatcher_pb2.LeaseRunsResponse(leases=leases, settled=settled)

    async def _settled(self, worker_id: str, budget: int) -> list[run_pb2.Run]:
        """The runs announced to this worker, within what the reply's byte budget has left;
        those past it are announced again, for the next reply."""
        messages: list[run_pb2.Run] = []
        later: list[Run] = []
        for run in await self.dispatcher.take_settled(worker_id):
            try:
                message = wire.run_to_pb(run)
            except Exception:  # protobuf's refusals have no common base
                logger.warning("settled run %s cannot be sent: its handlers miss it", run.id)
                continue
            if later or message.ByteSize() > budget:
                later.append(run)
                continue
            messages.append(message)
            budget -= message.ByteSize()
        if later:
            await self.dispatcher.announce_again(later)
        return messages

    async def _leases(
        self, worker_id: str, leased: list[tuple[Run, Lease]]
    ) -> list[dispatcher_pb2.Lease]:
        """The reply's leases, each built on its own: a run whose message cannot be
        built fails alone, and runs past the reply's byte budget go back to the queue."""
        budget = limits().batch_bytes
        leases: list[dispatcher_pb2.Lease] = []
        size = 0
        over_budget: list[str] = []
        for run, lease in leased:
            if over_budget:
                over_budget.append(run.id)
                continue
            try:
                message = dispatcher_pb2.Lease(
                    run=wire.run_to_pb(run), deadline=wire.timestamp(lease.deadline)
                )
                message_size = message.ByteSize()
            except Exception as error:  # protobuf's refusals have no common base
                await self.dispatcher.reject_lease(worker_id, run, f"cannot be sent: {error}")
                continue
            if leases and size + message_size > budget:
                over_budget.append(run.id)
                continue
            leases.append(message)
            size += message_size
        if over_budget:
            await self.dispatcher.release_runs(worker_id, over_budget)
        return leases

    async def Heartbeat(
        self, request: dispatcher_pb2.HeartbeatRequest, context: Context
    ) -> dispatcher_pb2.HeartbeatResponse:
        with _worker_call():
            reply = await self.dispatcher.heartbeat(request.worker_id, list(request.run_ids))
            return dispatcher_pb2.HeartbeatResponse(
                aborts=[
                    dispatcher_pb2.RunAbort(run_id=run_id, reason=reason)
                    for run_id, reason in reply.aborts.items()
                ],
                lost_run_ids=reply.lost,
            )

    async def ReportRuns(
        self, request: dispatcher_pb2.ReportRunsRequest, context: Context
    ) -> dispatcher_pb2.ReportRunsResponse:
        with _worker_call():
            reports = []
            unreadable = []
            for index, item in enumerate(request.reports):
                report, problem = _report(item, f"reports[{index}]")
                if problem:
                    unreadable.append(
                        dispatcher_pb2.RejectedReport(run_id=item.run_id, reason=problem)
                    )
                reports.append((item.run_id, item.attempt, report))
            reply = await self.dispatcher.report_all(request.worker_id, reports)
            return dispatcher_pb2.ReportRunsResponse(
                ignored_run_ids=reply.ignored,
                rejected=[
                    *unreadable,
                    *(
                        dispatcher_pb2.RejectedReport(run_id=run_id, reason=reason)
                        for run_id, reason in reply.rejected
                    ),
                ],
            )

    async def ReleaseRuns(
        self, request: dispatcher_pb2.ReleaseRunsRequest, context: Context
    ) -> dispatcher_pb2.ReleaseRunsResponse:
        with _worker_call():
            released = await self.dispatcher.release_runs(request.worker_id, list(request.run_ids))
            return dispatcher_pb2.ReleaseRunsResponse(released_run_ids=released)

    async def ListDeadLetters(
        self, request: dispatcher_pb2.ListDeadLettersRequest, context: Context
    ) -> dispatcher_pb2.ListDeadLettersResponse:
        letters, cursor = await self.dispatcher.dead_letters(request.limit, request.cursor)
        return dispatcher_pb2.ListDeadLettersResponse(
            dead_letters=[wire.dead_letter_to_pb(letter) for letter in letters], next_cursor=cursor
        )

    async def RetryDeadLetters(
        self, request: dispatcher_pb2.RetryDeadLettersRequest, context: Context
    ) -> dispatcher_pb2.RetryDeadLettersResponse:
        retried = await self.dispatcher.retry_dead_letters(list(request.ids), request.all)
        return dispatcher_pb2.RetryDeadLettersResponse(retried=retried)

    async def DropDeadLetters(
        self, request: dispatcher_pb2.DropDeadLettersRequest, context: Context
    ) -> dispatcher_pb2.DropDeadLettersResponse:
        dropped = await self.dispatcher.drop_dead_letters(list(request.ids), request.all)
        return dispatcher_pb2.DropDeadLettersResponse(dropped=dropped)
