"""The worker runtime shared by the io-worker and the cpu-runner.

A worker leases runs of its kind from the dispatcher and hands each to an executor (the
io-worker runs the task on this event loop; the cpu-runner in a separate process). Three
loops cooperate: the lease loop asks for as many runs as there are free slots (long poll),
the heartbeat loop renews the leases of runs in flight and learns of external aborts, and
the report loop delivers reports in batches (``fluid.service.worker_reports``). Each loop
survives any failure: it is logged once per incident, the loop backs off and goes on, and
``degraded()`` says which loops are failing. A stopping worker leases nothing more, lets
runs in flight finish within the grace period, then hands back the rest so they run
elsewhere without waiting for their lease to expire.

The loops speak domain types; the dispatcher's messages and status codes stay in the
link (``fluid.service.worker_link``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import grpc

from fluid.scheduler.errors import FailedPreconditionError, UnavailableError
from fluid.scheduler.health import DegradedLoop
from fluid.scheduler.limits import limits
from fluid.scheduler.models import (
    RunError,
    RunReport,
    TaskState,
    WorkerKind,
    sendable_report,
)
from fluid.scheduler.run import Run, utcnow
from fluid.scheduler.task import Task
from fluid.scheduler.v1 import dispatcher_pb2_grpc

from .loops import Backoff, LoopHealth, cancel_and_wait, renewal_interval
from .settings import LeasingSettings
from .worker_hooks import AttemptHook, LifecycleEvents, RunEvents, SendableReport
from .worker_link import DispatcherLink, WorkerLink
from .worker_reports import Reporter

logger = logging.getLogger("fluid.worker")

# Registration tries at start while the dispatcher is unreachable (minutes at the cap).
REGISTER_TRIES = 1000
# The worker's loops, as its health and its asyncio tasks name them (registering at
# start is reported as a loop too).
REGISTER_LOOP = "register"
LEASE_LOOP = "lease-loop"
HEARTBEAT_LOOP = "heartbeat-loop"
REPORT_LOOP = "report-loop"


# The service a worker of each kind runs in, as its loops' health metrics name it.
_OWNERS = {WorkerKind.io: "io-worker", WorkerKind.cpu: "cpu-runner"}


def new_worker_id(kind: WorkerKind) -> str:
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


RunExecutor = Callable[[Task, Run], Awaitable[RunReport]]
"""Executes one attempt of a run and says how it ended (cancelled on abort or shutdown)."""


@dataclass
class LeasingWorker:
    """Leases runs of its kind's tasks and executes them with ``executor``."""

    link: WorkerLink
    executor: RunExecutor
    tasks: Mapping[str, Task]
    kind: WorkerKind = WorkerKind.io
    concurrency: int = 100
    lease_wait: float = 1.0
    report_batch_size: int = 256
    # Bytes of reports sent in one call (0: FLUID_LIMIT_BATCH_BYTES).
    report_batch_bytes: int = 0
    # Seconds a busy worker waits for more free slots before leasing (batching).
    lease_linger: float = 0.002
    worker_id: str = ""
    lease_ttl: float = 15.0
    # The task manager whose handlers hear the runs' states (see fluid.scheduler.lifecycle);
    # None: no handlers.
    lifecycle: RunEvents | None = None
    # Back-off of a failing loop: seconds before the first retry, doubling up to the cap.
    retry_first: float = 0.1
    retry_cap: float = 5.0
    # Seconds a stopping worker waits for its last reports to be delivered.
    report_flush_timeout: float = 10.0
    _in_flight: dict[str, InFlight] = field(default_factory=dict)
    _slot_free: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _loops: list[asyncio.Task[None]] = field(default_factory=list)
    # Handlers hearing the runs the dispatcher settled (LeaseReply.settled).
    _hearing: set[asyncio.Task[None]] = field(default_factory=set)
    _health: LoopHealth = field(default_factory=LoopHealth)
    # Event-loop time of the next heartbeat (sooner after a failed one: the back-off).
    _heartbeat_due: float = 0.0
    _reporter: Reporter = field(init=False)
    _hooks: list[AttemptHook] = field(init=False)
    # The worker's generation: the dispatcher keeps the task definitions of the newest.
    started: datetime = field(default_factory=utcnow, init=False)

    def __post_init__(self) -> None:
        self.worker_id = self.worker_id or new_worker_id(self.kind)
        self._health.owner = _OWNERS[self.kind]
        self._reporter = Reporter(
            self.link,
            self.worker_id,
            batch_bytes=self.report_batch_bytes or limits().batch_bytes,
            batch_size=self.report_batch_size,
        )
        # In this order: the report is made sendable, queued for reporting, and only
        # then are the lifecycle handlers called (a slow handler delays no report).
        self._hooks = [SendableReport(), self._reporter]
        if self.lifecycle is not None:
            self._hooks.append(LifecycleEvents(self.lifecycle))

    @classmethod
    def over(
        cls,
        channel: grpc.aio.Channel,
        executor: RunExecutor,
        tasks: Mapping[str, Task],
        *,
        kind: WorkerKind,
        concurrency: int,
        settings: LeasingSettings,
        lifecycle: RunEvents | None = None,
    ) -> LeasingWorker:
        """A worker of ``kind`` talking to the dispatcher on ``channel``, as the io-worker
        and the cpu-runner run it."""
        return cls(
            lifecycle=lifecycle,
            link=DispatcherLink(dispatcher_pb2_grpc.DispatcherServiceStub(channel)),
            executor=executor,
            tasks=tasks,
            kind=kind,
            concurrency=concurrency,
            lease_wait=settings.lease_wait_seconds,
            report_batch_size=settings.report_batch_size,
        )

    @property
    def own_tasks(self) -> list[Task]:
        """The tasks of this worker's kind (the others are for the other kind of worker)."""
        return [task for task in self.tasks.values() if WorkerKind.of(task.cpu_bound) is self.kind]

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between two heartbeats, each renewing the leases in flight; also how
        long one heartbeat call may take, since the next is due by then."""
        return renewal_interval(self.lease_ttl)

    def degraded(self) -> tuple[DegradedLoop, ...]:
        """The loops failing now (by name), each with the error that began the incident."""
        return self._health.degraded()

    async def register(self) -> None:
        """Tell the dispatcher this worker and its tasks; take the lease TTL it says."""
        ttl = await self.link.register(
            self.worker_id,
            self.own_tasks,
            kind=self.kind,
            concurrency=self.concurrency,
            started=self.started,
        )
        self.lease_ttl = ttl or self.lease_ttl
        logger.info(
            "worker %s registered %d task(s) with the dispatcher",
            self.worker_id,
            len(self.own_tasks),
        )

    async def start(self) -> None:
        """Register (retrying while the dispatcher is unreachable) and start the loops."""
        backoff = Backoff(self.retry_first, self.retry_cap)
        for _ in range(REGISTER_TRIES - 1):
            try:
                await self.register()
                break
            except UnavailableError as error:
                self._health.failed(REGISTER_LOOP, error)
                await backoff.sleep()
        else:
            await self.register()  # the last try: its error is the caller's
        self._health.ok(REGISTER_LOOP)
        self._heartbeat_due = asyncio.get_running_loop().time() + self.heartbeat_interval
        self._loops = [
            asyncio.create_task(
                self._supervise(LEASE_LOOP, self._lease, until=self._stopping), name=LEASE_LOOP
            ),
            asyncio.create_task(
                self._supervise(HEARTBEAT_LOOP, self._heartbeat), name=HEARTBEAT_LOOP
            ),
            asyncio.create_task(
                self._supervise(REPORT_LOOP, self._reporter.step), name=REPORT_LOOP
            ),
        ]

    async def stop(self, grace: float) -> None:
        """Stop leasing, let runs finish for ``grace`` seconds, hand back the rest."""
        self._stopping.set()
        self._slot_free.set()
        if self._loops:
            # The current long poll returns within lease_wait; runs it brings are released.
            await asyncio.wait(self._loops[:1], timeout=self.lease_wait + 5)
        running = [flight.task for flight in self._in_flight.values()]
        if running:
            logger.info("waiting up to %ss for %d run(s) in flight", grace, len(running))
            await asyncio.wait(running, timeout=grace)
        leftover = list(self._in_flight.values())
        for flight in leftover:
            flight.stopped = True
            flight.task.cancel()
        await asyncio.gather(*(flight.task for flight in leftover), return_exceptions=True)
        await self._release([flight.run.id for flight in leftover])
        if self._hearing:
            await asyncio.wait(list(self._hearing), timeout=grace)
            await cancel_and_wait(list(self._hearing))
        if not await self._reporter.flush(self.report_flush_timeout):
            logger.error(
                "gave up delivering %d report(s) after %ss: their leases expire and "
                "the dispatcher settles their runs",
                self._reporter.pending,
                self.report_flush_timeout,
            )
        await cancel_and_wait(self._loops)

    async def _supervise(
        self, name: str, step: Callable[[], Awaitable[None]], until: asyncio.Event | None = None
    ) -> None:
        """Run ``step`` over and over (until ``until`` is set, or cancelled): no failure
        ends the loop; the first of an incident is logged, the loop backs off and goes on."""
        backoff = Backoff(self.retry_first, self.retry_cap)
        while until is None or not until.is_set():
            try:
                try:
                    await step()
                except FailedPreconditionError:
                    # The dispatcher forgot this worker (it restarted with a memory store).
                    logger.warning("the dispatcher does not know worker %s", self.worker_id)
                    await self.register()
            except Exception as error:
                self._health.failed(name, error)
                await backoff.sleep()
            else:
                self._health.ok(name)
                backoff.reset()

    async def _release(self, run_ids: list[str]) -> None:
        if not run_ids:
            return
        try:
            await self.link.release(self.worker_id, run_ids)
        except Exception as error:
            logger.warning("could not hand back runs (%s); their leases will expire", error)
            return
        logger.info("handed back %d unfinished run(s)", len(run_ids))

    # -- leasing ---------------------------------------------------------------------
    async def _lease(self) -> None:
        free = self.concurrency - len(self._in_flight)
        if free <= 0:
            self._slot_free.clear()
            await self._slot_free.wait()
            return
        if free < self.concurrency // 2 and self.lease_linger:
            # Busy: let a few more runs finish so one lease call brings many runs
            # rather than many calls one run each (an idle worker leases at once).
            await asyncio.sleep(self.lease_linger)
            free = self.concurrency - len(self._in_flight)
        reply = await self.link.lease(self.worker_id, free, self.lease_wait)
        for bad in reply.unreadable:
            logger.error("leased run %s cannot be read: %s", bad.run_id, bad.problem)
            failure = RunReport(
                TaskState.failure,
                error=RunError("LeaseRejectedError", f"the worker cannot read it: {bad.problem}"),
            )
            self._reporter.add(bad.run_id, bad.attempt, sendable_report(failure)[0])
        if reply.settled and self.lifecycle is not None:
            # Handlers are the user's code: they must not hold up the next lease.
            hearing = asyncio.create_task(self._hear(self.lifecycle, reply.settled))
            self._hearing.add(hearing)
            hearing.add_done_callback(self._hearing.discard)
        if self._stopping.is_set():
            await self._release([run.id for run in reply.runs])
            return
        for run in reply.runs:
            self._start(run)

    @staticmethod
    async def _hear(lifecycle: RunEvents, runs: Sequence[Run]) -> None:
        for run in runs:
            await lifecycle.emit(run)

    def _start(self, run: Run) -> None:
        task = self.tasks.get(run.task)
        execution = asyncio.create_task(self._execute(run, task), name=f"run-{run.id}")
        self._in_flight[run.id] = InFlight(run=run, task=execution)

    async def _execute(self, run: Run, task: Task | None) -> None:
        try:
            if task is None:
                report = RunReport(
                    TaskState.failure,
                    error=RunError(
                        "LookupError", f"worker {self.worker_id} has no task {run.task}"
                    ),
                )
            else:
                for hook in self._hooks:
                    await hook.started(run)
                report = await self.executor(task, run)
        except asyncio.CancelledError:
            flight = self._in_flight.get(run.id)
            if flight is None or flight.stopped or flight.stop_reason is None:
                return  # shutdown hands it back; a lost lease is the dispatcher's to settle
            report = RunReport(TaskState.aborted, reason=flight.stop_reason)
        except Exception as exc:
            # An executor's own failure (not the task's) still ends the attempt.
            logger.exception("executing run %s failed", run.id)
            report = RunReport(TaskState.failure, error=RunError.from_exception(exc))
        finally:
            self._in_flight.pop(run.id, None)
            self._slot_free.set()
        for hook in self._hooks:
            try:
                report = await hook.ended(run, report)
            except Exception:
                # The hooks after it (the report) still get the report.
                logger.exception("%s failed after run %s", type(hook).__name__, run.id)

    # -- heartbeats ----------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self._heartbeat_due - loop.time()))
        reply = await self.link.heartbeat(
            self.worker_id, list(self._in_flight), timeout=self.heartbeat_interval
        )
        self._heartbeat_due = loop.time() + self.heartbeat_interval
        for run_id, reason in reply.aborts.items():
            self._stop_run(run_id, reason or "aborted")
        for run_id in reply.lost:
            self._stop_run(run_id, None)

    def _stop_run(self, run_id: str, reason: str | None) -> None:
        flight = self._in_flight.get(run_id)
        if flight is None or flight.task.done():
            return
        logger.info("stopping run %s: %s", run_id, reason or "lease lost")
        flight.stop_reason = reason
        flight.task.cancel()
