"""The async client: queue runs, wait for them, abort them, query history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any, ParamSpec, TypeVar, cast

import grpc

from fluid.service.channel import open_channel
from fluid.service.settings import ClientSettings, task_clients

from . import wire
from .coalescing import QueueCoalescer
from .definition import TaskInfo
from .errors import ERRORS_BY_CODE, FluidError, RunTimeoutError
from .limits import batches, limits
from .models import RunRequest, TaskPriority, TaskState
from .run import Run, new_run_id
from .secrets import revealed
from .status import DeadLetter, QueueStatus, SchedulerStatus
from .task import Task
from .v1 import (
    dispatcher_pb2,
    dispatcher_pb2_grpc,
    history_pb2,
    history_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
)

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


def _translate(error: grpc.aio.AioRpcError) -> Exception:
    cls = ERRORS_BY_CODE.get(error.code().name)
    if cls is None:
        return error
    return cls(error.details() or error.code().name)


def _rpc(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Raise fluid's typed errors instead of raw gRPC ones."""

    @wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except grpc.aio.AioRpcError as error:
            raise _translate(error) from None

    return call


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of history; pass ``next_cursor`` back for the next one (empty: last page)."""

    runs: list[Run]
    next_cursor: str


def _message_size(message: dispatcher_pb2.QueueRunRequest) -> int:
    return message.ByteSize()


def _run_request(task: str | Task, params: Mapping[str, Any], **options: Any) -> RunRequest:
    if isinstance(task, Task):
        # Validate locally first: the caller gets pydantic's own errors, no round trip.
        # The caller's values travel, not the model's dump, which masks SecretStr.
        task.validate_params(params)
    return RunRequest(str(task), params, **options)


def _queue_run_request(request: RunRequest) -> dispatcher_pb2.QueueRunRequest:
    return dispatcher_pb2.QueueRunRequest(
        task=request.task,
        # The real value of a SecretStr: pydantic's dump would send the mask.
        params=wire.struct_from_dict(revealed(dict(request.params))),
        priority=wire.priority_to_pb(request.priority),
        # An id made here, not by the dispatcher, makes queueing idempotent: the channel
        # retries QueueRun(s) after UNAVAILABLE (fluid.service.channel), and a retry of a
        # request the dispatcher did take returns that run rather than queueing another.
        run_id=request.run_id or new_run_id(),
        idempotency_key=request.idempotency_key,
        execute_after=wire.timestamp(request.execute_after),
        from_run_id=request.from_run_id,
    )


class Client:
    """Talks to a fluid system: ``Client()`` uses ``FLUID_ADDRESS`` (default localhost:50051)
    and sends ``FLUID_TOKEN`` when set."""

    def __init__(
        self,
        address: str | None = None,
        *,
        history_address: str | None = None,
        scheduler_address: str | None = None,
        settings: ClientSettings | None = None,
        token: str | None = None,
        forwarding: bool = False,
    ) -> None:
        # Inside a run on an io-worker: that worker's system (see settings.task_clients).
        settings = settings or task_clients.get() or ClientSettings()
        # The bearer token every call sends: ``token``, else FLUID_TOKEN (settings.token).
        self._token = settings.token.get_secret_value() if token is None else token
        self.dispatcher_address = address or settings.dispatcher
        self.history_address = history_address or (
            address if address and not settings.history_address else settings.history
        )
        self.scheduler_address = scheduler_address or (
            address if address and not settings.scheduler_address else settings.scheduler
        )
        # Each call sends the token of the caller it acts for (fluid.service.auth's
        # forwarded_token), not this process's: the gateway.
        self._forwarding = forwarding
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[tuple[str, Callable[[grpc.aio.Channel], Any]], Any] = {}
        # Concurrent queue_run calls share QueueRuns calls; a forwarding client's calls
        # each carry their own caller's token, so they travel alone.
        self._coalescer = (
            None if forwarding else QueueCoalescer(self._queue_one, self._queue_together)
        )

    def _stub(self, address: str, stub: Callable[[grpc.aio.Channel], S]) -> S:
        """The stub of ``stub``'s service on the channel to ``address``, both made once:
        a stub builds a callable per RPC, which cost about a tenth of a QueueRun per call."""
        key = (address, stub)
        if key not in self._stubs:
            if address not in self._channels:
                self._channels[address] = open_channel(
                    address, self._token, forwarding=self._forwarding
                )
            self._stubs[key] = stub(self._channels[address])
        return cast(S, self._stubs[key])

    @property
    def _dispatcher(self) -> dispatcher_pb2_grpc.DispatcherServiceAsyncStub:
        return self._stub(self.dispatcher_address, dispatcher_pb2_grpc.DispatcherServiceStub)

    @property
    def _history(self) -> history_pb2_grpc.HistoryServiceAsyncStub:
        return self._stub(self.history_address, history_pb2_grpc.HistoryServiceStub)

    @property
    def _scheduler(self) -> scheduler_pb2_grpc.SchedulerServiceAsyncStub:
        return self._stub(self.scheduler_address, scheduler_pb2_grpc.SchedulerServiceStub)

    async def close(self) -> None:
        """Close the channels this client opened; a later call opens them again."""
        channels, self._channels = self._channels, {}
        self._stubs = {}
        for channel in channels.values():
            await channel.close(None)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def queue(
        self, task: str | Task, priority: TaskPriority | None = None, **params: Any
    ) -> Run:
        """Queue a run of ``task`` with ``params``; returns it in state ``queued``."""
        return await self.queue_run(task, params, priority=priority)

    @_rpc
    async def queue_run(
        self,
        task: str | Task,
        params: Mapping[str, Any],
        *,
        priority: TaskPriority | None = None,
        run_id: str = "",
        idempotency_key: str = "",
        execute_after: datetime | None = None,
        from_run_id: str = "",
    ) -> Run:
        """Queue a run with every option: a ``run_id`` or ``idempotency_key`` queues once."""
        request = _run_request(
            task,
            params,
            priority=priority,
            run_id=run_id,
            idempotency_key=idempotency_key,
            execute_after=execute_after,
            from_run_id=from_run_id,
        )
        message = _queue_run_request(request)
        if self._coalescer is None:
            response = await self._queue_one(message)
        else:
            response = await self._coalescer.queue(message)
        return wire.run_from_pb(response.run)

    async def _queue_one(
        self, message: dispatcher_pb2.QueueRunRequest
    ) -> dispatcher_pb2.QueueRunResponse:
        return await self._dispatcher.QueueRun(message)

    async def _queue_together(
        self, messages: list[dispatcher_pb2.QueueRunRequest]
    ) -> list[dispatcher_pb2.QueueRunResponse]:
        response = await self._dispatcher.QueueRuns(dispatcher_pb2.QueueRunsRequest(runs=messages))
        return list(response.runs)

    async def queue_many(
        self,
        task: str | Task,
        params: Iterable[Mapping[str, Any]],
        *,
        priority: TaskPriority | None = None,
        batch_size: int = 500,
    ) -> list[Run]:
        """Queue one run of ``task`` per params mapping, ``batch_size`` runs per call.

        Each batch is all-or-nothing: an invalid params mapping refuses its batch.
        """
        return await self.queue_requests(
            [_run_request(task, values, priority=priority) for values in params],
            batch_size=batch_size,
        )

    @_rpc
    async def queue_requests(
        self, requests: Iterable[RunRequest], *, batch_size: int = 500
    ) -> list[Run]:
        """Queue runs of any tasks, each with its own options, at most ``batch_size`` runs
        (and ``FLUID_LIMIT_BATCH_BYTES`` of request) per call.

        Each batch is all-or-nothing: one refused request refuses its batch.
        """
        messages = [_queue_run_request(request) for request in requests]
        runs: list[Run] = []
        for batch in batches(messages, _message_size, limits().batch_bytes, batch_size):
            response = await self._dispatcher.QueueRuns(dispatcher_pb2.QueueRunsRequest(runs=batch))
            runs.extend(wire.run_from_pb(item.run) for item in response.runs)
        return runs

    async def queue_and_wait(
        self,
        task: str | Task,
        *,
        timeout: float = 60.0,
        priority: TaskPriority | None = None,
        **params: Any,
    ) -> Run:
        """Queue a run and wait until it is done (``RunTimeoutError`` after ``timeout`` s)."""
        run = await self.queue_run(task, params, priority=priority)
        return await self.wait(run.id, timeout=timeout)

    async def wait(self, run_id: str, *, timeout: float = 60.0) -> Run:
        """Wait until a run is done and return it."""
        try:
            async with asyncio.timeout(timeout):
                async for run in self.watch(run_id):
                    if run.is_done:
                        return run
        except TimeoutError:
            raise RunTimeoutError(f"run {run_id} not done after {timeout}s") from None
        raise FluidError(f"the stream of run {run_id} ended before the run was done")

    async def watch(self, run_id: str) -> AsyncIterator[Run]:
        """Every state of a run, from the current one to the first terminal one."""
        call = self._dispatcher.WatchRun(dispatcher_pb2.WatchRunRequest(run_id=run_id))
        try:
            async for response in call:
                yield wire.run_from_pb(response.run)
        except grpc.aio.AioRpcError as error:
            raise _translate(error) from None
        finally:
            call.cancel()

    async def watch_runs(self, tasks: Iterable[str] = ()) -> AsyncIterator[Run]:
        """Every change of every run (of ``tasks``) from now on, until the dispatcher ends
        the stream (it lost changes): a feed to watch; history is the record."""
        call = self._dispatcher.WatchRuns(dispatcher_pb2.WatchRunsRequest(tasks=list(tasks)))
        try:
            async for response in call:
                yield wire.run_from_pb(response.run)
        except grpc.aio.AioRpcError as error:
            raise _translate(error) from None
        finally:
            call.cancel()

    @_rpc
    async def get_run(self, run_id: str) -> Run:
        """The live run from the dispatcher (``NotFoundError`` when unknown)."""
        response = await self._dispatcher.GetRun(dispatcher_pb2.GetRunRequest(run_id=run_id))
        return wire.run_from_pb(response.run)

    @_rpc
    async def abort(self, run_id: str, reason: str = "") -> Run:
        """Abort a queued or running run; a running one stops when its worker cancels it."""
        response = await self._dispatcher.AbortRun(
            dispatcher_pb2.AbortRunRequest(run_id=run_id, reason=reason)
        )
        return wire.run_from_pb(response.run)

    @_rpc
    async def queue_status(self) -> QueueStatus:
        """Runs waiting per priority and the live workers with their load."""
        response = await self._dispatcher.GetQueueStatus(dispatcher_pb2.GetQueueStatusRequest())
        return wire.queue_status_from_pb(response)

    @_rpc
    async def dead_letters(self, limit: int = 0, cursor: str = "") -> tuple[list[DeadLetter], str]:
        """A page of the run snapshots history refused, oldest first, and the cursor of
        the next page ("" on the last)."""
        response = await self._dispatcher.ListDeadLetters(
            dispatcher_pb2.ListDeadLettersRequest(limit=limit, cursor=cursor)
        )
        return [wire.dead_letter_from_pb(item) for item in response.dead_letters], (
            response.next_cursor
        )

    @_rpc
    async def retry_dead_letters(self, ids: Iterable[str] = (), *, every: bool = False) -> int:
        """Send these dead letters (or ``every`` one) to history again; how many were."""
        response = await self._dispatcher.RetryDeadLetters(
            dispatcher_pb2.RetryDeadLettersRequest(ids=list(ids), all=every)
        )
        return response.retried

    @_rpc
    async def drop_dead_letters(self, ids: Iterable[str] = (), *, every: bool = False) -> int:
        """Forget these dead letters (or ``every`` one); how many were."""
        response = await self._dispatcher.DropDeadLetters(
            dispatcher_pb2.DropDeadLettersRequest(ids=list(ids), all=every)
        )
        return response.dropped

    @_rpc
    async def list_tasks(self) -> list[TaskInfo]:
        """Every registered task's info: definition, enabled flag, live workers, running runs."""
        response = await self._dispatcher.ListTasks(dispatcher_pb2.ListTasksRequest())
        return [
            wire.task_info_from_pb(item, f"tasks[{i}]") for i, item in enumerate(response.tasks)
        ]

    @_rpc
    async def list_schedules(self) -> SchedulerStatus:
        """The scheduled tasks as the scheduler sees them: next fire, last slot, leader.

        ``UnimplementedError`` or ``UnavailableError`` when no scheduler serves there.
        """
        response = await self._scheduler.ListSchedules(scheduler_pb2.ListSchedulesRequest())
        return wire.scheduler_status_from_pb(response)

    @_rpc
    async def set_task_enabled(self, name: str, enabled: bool) -> TaskInfo:
        """Enable or disable task ``name``: a disabled task's due runs end ``aborted`` and its
        slots pass unfired. The task as updated; ``NotFoundError`` if it is not registered."""
        response = await self._dispatcher.SetTaskEnabled(
            dispatcher_pb2.SetTaskEnabledRequest(name=name, enabled=enabled)
        )
        return wire.task_info_from_pb(response.task, "task")

    @_rpc
    async def list_runs(
        self,
        *,
        task: str = "",
        state: TaskState | Iterable[TaskState] = (),
        start: datetime | None = None,
        end: datetime | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        limit: int = 50,
        cursor: str = "",
    ) -> RunPage:
        """A page of stored runs, newest first, filtered on every given criterion."""
        states = [state] if isinstance(state, TaskState) else list(state)
        request = history_pb2.ListRunsRequest(
            task=task,
            states=[wire.state_to_pb(item) for item in states],
            queued_after=wire.timestamp(start),
            queued_before=wire.timestamp(end),
            params_contain=wire.struct_from_dict(params) if params else None,
            tags=list(tags),
            limit=limit,
            cursor=cursor,
        )
        response = await self._history.ListRuns(request)
        return RunPage(
            runs=[wire.run_from_pb(item) for item in response.runs],
            next_cursor=response.next_cursor,
        )

    @_rpc
    async def get_stored_run(self, run_id: str) -> Run:
        """A run as history stored it (``NotFoundError`` when absent)."""
        response = await self._history.GetRun(
            history_pb2.HistoryServiceGetRunRequest(run_id=run_id)
        )
        return wire.run_from_pb(response.run)
