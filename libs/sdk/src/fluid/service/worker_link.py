"""A worker's link to the dispatcher: the only part of the worker runtime that knows
protobuf messages and gRPC status codes.

The loops (``fluid.service.worker``) speak domain types through ``WorkerLink``; tests
drive them through a fake link. ``DispatcherLink`` is the real one: it converts messages
each way and turns a failed call into a typed ``FluidError`` (the dispatcher unreachable,
restarting or too slow to answer is ``UnavailableError``: the call may be retried).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import grpc

from fluid.scheduler import wire
from fluid.scheduler.definition import TaskDefinition
from fluid.scheduler.models import HeartbeatReply, ReportReply, RunReport, WorkerKind
from fluid.scheduler.run import Run
from fluid.scheduler.task import Task
from fluid.scheduler.v1 import dispatcher_pb2, dispatcher_pb2_grpc

from .loops import rpc_error

logger = logging.getLogger("fluid.worker")


@dataclass(frozen=True, slots=True)
class UnreadableLease:
    """A leased run whose message could not be converted: it fails, the others go on."""

    run_id: str
    attempt: int
    problem: str


@dataclass(frozen=True, slots=True)
class LeaseReply:
    runs: list[Run]
    unreadable: list[UnreadableLease] = field(default_factory=list)
    # Runs the dispatcher ended without a worker, for this worker's handlers to hear.
    settled: list[Run] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EncodedReport:
    """An attempt's report, encoded for sending by the link that made it."""

    run_id: str
    attempt: int
    report: RunReport
    # Bytes it adds to a batch.
    size: int
    # A failure report standing in for a refused one: never replaced again.
    replacement: bool = False
    # The link's encoding, made once: sizing a batch needs it and sending reuses it.
    encoded: object = field(default=None, repr=False, compare=False)


class WorkerLink(Protocol):
    """The calls a worker makes to the dispatcher, in domain types."""

    async def register(
        self,
        worker_id: str,
        tasks: Sequence[Task],
        *,
        kind: WorkerKind,
        concurrency: int,
        started: datetime,
    ) -> float:
        """Register the worker and its tasks (``started``: the worker's generation); the
        lease TTL in seconds (0: not said)."""

    async def lease(self, worker_id: str, max_runs: int, wait: float) -> LeaseReply:
        """Up to ``max_runs`` runs, waiting up to ``wait`` seconds for one (long poll)."""

    async def heartbeat(
        self, worker_id: str, run_ids: Sequence[str], timeout: float
    ) -> HeartbeatReply:
        """Renew the leases of the runs in flight; which of them to stop."""

    def encode_report(
        self, run_id: str, attempt: int, report: RunReport, *, replacement: bool = False
    ) -> EncodedReport:
        """The report ready to send (raises when it cannot be encoded)."""

    async def report(self, worker_id: str, reports: Sequence[EncodedReport]) -> ReportReply:
        """Send one batch of reports."""

    async def release(self, worker_id: str, run_ids: Sequence[str]) -> None:
        """Hand runs back to be queued again."""


@contextlib.contextmanager
def _calling() -> Iterator[None]:
    try:
        yield
    except grpc.aio.AioRpcError as error:
        raise rpc_error(error) from error


class DispatcherLink:
    """``WorkerLink`` over the dispatcher's gRPC service."""

    # Seconds a call may take beyond what it asks the dispatcher to wait.
    CALL_TIMEOUT = 10.0

    def __init__(self, stub: dispatcher_pb2_grpc.DispatcherServiceAsyncStub) -> None:
        self._stub = stub

    async def register(
        self,
        worker_id: str,
        tasks: Sequence[Task],
        *,
        kind: WorkerKind,
        concurrency: int,
        started: datetime,
    ) -> float:
        request = dispatcher_pb2.RegisterWorkerRequest(
            worker_id=worker_id,
            kind=wire.worker_kind_to_pb(kind),
            tasks=[wire.definition_to_pb(TaskDefinition.of(task)) for task in tasks],
            concurrency=concurrency,
            started=wire.timestamp(started),
        )
        with _calling():
            response = await self._stub.RegisterWorker(request, timeout=self.CALL_TIMEOUT)
        return response.lease_ttl.ToTimedelta().total_seconds()

    async def lease(self, worker_id: str, max_runs: int, wait: float) -> LeaseReply:
        request = dispatcher_pb2.LeaseRunsRequest(
            worker_id=worker_id, max_runs=max_runs, wait=wire.duration(wait)
        )
        with _calling():
            response = await self._stub.LeaseRuns(request, timeout=wait + self.CALL_TIMEOUT)
        reply = LeaseReply(runs=[])
        for lease in response.leases:
            # Each run on its own: one message that cannot be converted loses no other.
            try:
                reply.runs.append(wire.run_from_pb(lease.run))
            except Exception as error:
                reply.unreadable.append(
                    UnreadableLease(
                        lease.run.id, lease.run.attempt, f"{type(error).__name__}: {error}"
                    )
                )
        for message in response.settled:
            try:
                reply.settled.append(wire.run_from_pb(message))
            except Exception as error:
                # Only handlers would have heard it: nothing to settle, say so and go on.
                logger.warning("settled run %s cannot be read: %s", message.id, error)
        return reply

    async def heartbeat(
        self, worker_id: str, run_ids: Sequence[str], timeout: float
    ) -> HeartbeatReply:
        request = dispatcher_pb2.HeartbeatRequest(worker_id=worker_id, run_ids=run_ids)
        with _calling():
            response = await self._stub.Heartbeat(request, timeout=timeout)
        return HeartbeatReply(
            aborts={abort.run_id: abort.reason for abort in response.aborts},
            lost=list(response.lost_run_ids),
        )

    def encode_report(
        self, run_id: str, attempt: int, report: RunReport, *, replacement: bool = False
    ) -> EncodedReport:
        message = wire.report_to_pb(run_id, attempt, report)
        return EncodedReport(run_id, attempt, report, message.ByteSize(), replacement, message)

    async def report(self, worker_id: str, reports: Sequence[EncodedReport]) -> ReportReply:
        messages = []
        for report in reports:
            if not isinstance(report.encoded, dispatcher_pb2.RunReport):
                raise TypeError(f"the report of run {report.run_id} was not encoded by this link")
            messages.append(report.encoded)
        request = dispatcher_pb2.ReportRunsRequest(worker_id=worker_id, reports=messages)
        with _calling():
            response = await self._stub.ReportRuns(request, timeout=self.CALL_TIMEOUT)
        return ReportReply(
            ignored=list(response.ignored_run_ids),
            rejected=[(item.run_id, item.reason) for item in response.rejected],
        )

    async def release(self, worker_id: str, run_ids: Sequence[str]) -> None:
        request = dispatcher_pb2.ReleaseRunsRequest(worker_id=worker_id, run_ids=run_ids)
        with _calling():
            await self._stub.ReleaseRuns(request, timeout=self.CALL_TIMEOUT)
