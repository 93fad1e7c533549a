"""The worker runtime shared by the io-worker and the cpu-runner.

A worker leases runs of its kind from the dispatcher and hands each to an executor (the
io-worker runs the task on this event loop; the cpu-runner in a separate process). Three
loops cooperate: the lease loop asks for as many runs as there are free slots (long poll),
the heartbeat loop renews the leases of runs in flight and learns of external aborts, and
the reporter sends outcomes in batches. A stopping worker leases nothing more, lets runs in
flight finish within the grace period, then hands back the rest so they run elsewhere
without waiting for their lease to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace

import grpc

from fluid.scheduler import wire
from fluid.scheduler.definition import TaskDefinition
from fluid.scheduler.lifecycle import TaskManager, manager_for_modules
from fluid.scheduler.models import RunError, RunOutcome, TaskState
from fluid.scheduler.run import Run, utcnow
from fluid.scheduler.task import Task
from fluid.scheduler.v1 import dispatcher_pb2, dispatcher_pb2_grpc

from .tasks import cancel_and_wait

logger = logging.getLogger("fluid.worker")

RETRY_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def new_worker_id(kind: str) -> str:
    return f"{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class InFlight:
    """A run this worker is executing."""

    run: Run
    task: asyncio.Task[None]
    # Why it is being stopped from outside: an abort reason, or None when the lease was
    # lost (then nothing is reported: the dispatcher already moved on).
    stop_reason: str | None = None
    stopped: bool = False


RunExecutor = Callable[[Task, Run], Awaitable[RunOutcome]]
"""Executes one attempt of a run and says how it ended (cancelled on abort or shutdown)."""


@dataclass
class LeasingWorker:
    """Leases runs of its kind's tasks and executes them with ``executor``."""

    dispatcher: dispatcher_pb2_grpc.DispatcherServiceAsyncStub
    executor: RunExecutor
    tasks: Mapping[str, Task]
    cpu_bound: bool = False
    concurrency: int = 100
    lease_wait: float = 1.0
    report_batch_size: int = 256
    # Seconds a busy worker waits for more free slots before leasing (batching).
    lease_linger: float = 0.002
    worker_id: str = ""
    lease_ttl: float = 15.0
    # Handlers of the plugins found in the task modules (see fluid.scheduler.lifecycle).
    lifecycle: TaskManager | None = None
    _in_flight: dict[str, InFlight] = field(default_factory=dict)
    _reports: asyncio.Queue[dispatcher_pb2.RunStateReport] = field(default_factory=asyncio.Queue)
    _slot_free: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _loops: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.worker_id = self.worker_id or new_worker_id("cpu" if self.cpu_bound else "io")
        if self.lifecycle is None:
            self.lifecycle = manager_for_modules(task.module for task in self.own_tasks)

    @property
    def own_tasks(self) -> list[Task]:
        """The tasks of this worker's kind (the others are for the other kind of worker)."""
        return [task for task in self.tasks.values() if task.cpu_bound == self.cpu_bound]

    async def register(self) -> None:
        kind = dispatcher_pb2.WORKER_KIND_CPU if self.cpu_bound else dispatcher_pb2.WORKER_KIND_IO
        response = await self.dispatcher.RegisterWorker(
            dispatcher_pb2.RegisterWorkerRequest(
                worker_id=self.worker_id,
                kind=kind,
                tasks=[wire.definition_to_pb(TaskDefinition.of(task)) for task in self.own_tasks],
                concurrency=self.concurrency,
            )
        )
        self.lease_ttl = response.lease_ttl.ToTimedelta().total_seconds() or self.lease_ttl
        logger.info(
            "worker %s registered %d task(s) with the dispatcher",
            self.worker_id,
            len(self.own_tasks),
        )

    async def start(self) -> None:
        """Register (retrying until the dispatcher answers) and start the loops."""
        for attempt in range(1000):
            try:
                await self.register()
                break
            except grpc.aio.AioRpcError as error:
                if error.code() is not grpc.StatusCode.UNAVAILABLE:
                    raise
                await asyncio.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
        self._loops = [
            asyncio.create_task(self._lease_loop(), name="lease-loop"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat-loop"),
            asyncio.create_task(self._report_loop(), name="report-loop"),
        ]

    async def stop(self, grace: float) -> None:
        """Stop leasing, let runs finish for ``grace`` seconds, hand back the rest."""
        self._stopping.set()
        self._slot_free.set()
        lease_loop = self._loops[0] if self._loops else None
        if lease_loop is not None:
            # The current long poll returns within lease_wait; runs it brings are released.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(lease_loop, timeout=self.lease_wait + 5)
        running = [flight.task for flight in self._in_flight.values()]
        if running:
            logger.info("waiting up to %ss for %d run(s) in flight", grace, len(running))
            await asyncio.wait(running, timeout=grace)
        leftover = list(self._in_flight.values())
        for flight in leftover:
            flight.stopped = True
            flight.task.cancel()
        await asyncio.gather(*(flight.task for flight in leftover), return_exceptions=True)
        if leftover:
            await self._release([flight.run.id for flight in leftover])
        await self._flush_reports()
        await cancel_and_wait(self._loops)

    async def _release(self, run_ids: list[str]) -> None:
        if not run_ids:
            return
        try:
            await self.dispatcher.ReleaseRuns(
                dispatcher_pb2.ReleaseRunsRequest(worker_id=self.worker_id, run_ids=run_ids),
                timeout=5,
            )
            logger.info("handed back %d unfinished run(s)", len(run_ids))
        except grpc.aio.AioRpcError as error:
            logger.warning("could not hand back runs (%s); their leases will expire", error.code())

    # -- leasing ---------------------------------------------------------------------
    async def _lease_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            free = self.concurrency - len(self._in_flight)
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            if free < self.concurrency // 2 and self.lease_linger:
                # Busy: let a few more runs finish so one lease call brings many runs
                # rather than many calls one run each (an idle worker leases at once).
                await asyncio.sleep(self.lease_linger)
                free = self.concurrency - len(self._in_flight)
            try:
                response = await self.dispatcher.LeaseRuns(
                    dispatcher_pb2.LeaseRunsRequest(
                        worker_id=self.worker_id,
                        max_runs=free,
                        wait=wire.duration(self.lease_wait),
                    ),
                    timeout=self.lease_wait + 10,
                )
            except grpc.aio.AioRpcError as error:
                failures += 1
                await self._on_dispatcher_error(error, failures)
                continue
            failures = 0
            leased = [wire.run_from_pb(lease.run) for lease in response.leases]
            if self._stopping.is_set():
                await self._release([run.id for run in leased])
                return
            for run in leased:
                self._start(run)

    async def _on_dispatcher_error(self, error: grpc.aio.AioRpcError, failures: int) -> None:
        if error.code() is grpc.StatusCode.FAILED_PRECONDITION:
            # The dispatcher forgot us (restarted with a memory store): register again.
            with contextlib.suppress(grpc.aio.AioRpcError):
                await self.register()
            return
        logger.warning("dispatcher call failed: %s %s", error.code().name, error.details())
        await asyncio.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1])

    def _start(self, run: Run) -> None:
        task = self.tasks.get(run.task)
        execution = asyncio.create_task(self._execute(run, task), name=f"run-{run.id}")
        self._in_flight[run.id] = InFlight(run=run, task=execution)

    async def _execute(self, run: Run, task: Task | None) -> None:
        assert self.lifecycle is not None
        try:
            if task is None:
                outcome = RunOutcome(
                    TaskState.failure,
                    error=RunError(
                        "LookupError", f"worker {self.worker_id} has no task {run.task}"
                    ),
                )
            else:
                await self.lifecycle.emit(run)
                outcome = await self.executor(task, run)
        except asyncio.CancelledError:
            flight = self._in_flight.get(run.id)
            if flight is None or flight.stopped or flight.stop_reason is None:
                return  # shutdown hands it back; a lost lease is the dispatcher's to settle
            outcome = RunOutcome(TaskState.aborted, reason=flight.stop_reason)
        except Exception as exc:
            # An executor's own failure (not the task's) still ends the attempt.
            logger.exception("executing run %s failed", run.id)
            outcome = RunOutcome(TaskState.failure, error=RunError.from_exception(exc))
        finally:
            flight = self._in_flight.pop(run.id, None)
            self._slot_free.set()
        if flight is not None:
            self._reports.put_nowait(wire.outcome_to_pb(run.id, run.attempt, outcome))
            await self.lifecycle.emit(
                replace(
                    run,
                    state=outcome.state,
                    result=outcome.result,
                    error=outcome.error,
                    reason=outcome.reason,
                    end=utcnow(),
                    output_tail=outcome.output_tail,
                )
            )

    # -- heartbeats and reports ----------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            run_ids = list(self._in_flight)
            try:
                response = await self.dispatcher.Heartbeat(
                    dispatcher_pb2.HeartbeatRequest(worker_id=self.worker_id, run_ids=run_ids),
                    timeout=self.lease_ttl / 3,
                )
            except grpc.aio.AioRpcError as error:
                await self._on_dispatcher_error(error, 1)
                continue
            for abort in response.aborts:
                self._stop_run(abort.run_id, abort.reason or "aborted")
            for run_id in response.lost_run_ids:
                self._stop_run(run_id, None)

    def _stop_run(self, run_id: str, reason: str | None) -> None:
        flight = self._in_flight.get(run_id)
        if flight is None or flight.task.done():
            return
        logger.info("stopping run %s: %s", run_id, reason or "lease lost")
        flight.stop_reason = reason
        flight.task.cancel()

    async def _report_loop(self) -> None:
        while True:
            first = await self._reports.get()
            await self._send_reports([first, *self._drain_reports()])

    def _drain_reports(self) -> list[dispatcher_pb2.RunStateReport]:
        batch: list[dispatcher_pb2.RunStateReport] = []
        while len(batch) < self.report_batch_size - 1 and not self._reports.empty():
            batch.append(self._reports.get_nowait())
        return batch

    async def _flush_reports(self) -> None:
        pending = self._drain_reports()
        while pending:
            await self._send_reports(pending, attempts=5)
            pending = self._drain_reports()

    async def _send_reports(
        self, reports: list[dispatcher_pb2.RunStateReport], attempts: int = 0
    ) -> None:
        """Send until the dispatcher takes them (``attempts`` bounds it; 0 is unbounded)."""
        tries = 0
        while True:
            try:
                await self.dispatcher.ReportRunStates(
                    dispatcher_pb2.ReportRunStatesRequest(
                        worker_id=self.worker_id, reports=reports
                    ),
                    timeout=10,
                )
                return
            except grpc.aio.AioRpcError as error:
                tries += 1
                if attempts and tries >= attempts:
                    logger.error(
                        "gave up reporting %d run(s) (%s): their leases expire and they run again",
                        len(reports),
                        error.code().name,
                    )
                    return
                logger.warning("reporting failed (%s); retrying", error.code().name)
                await asyncio.sleep(RETRY_DELAYS[min(tries, len(RETRY_DELAYS)) - 1])
