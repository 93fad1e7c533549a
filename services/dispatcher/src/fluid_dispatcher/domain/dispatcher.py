"""The dispatcher's use cases: queue, lease, heartbeat, report, abort, watch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import cast

from fluid.scheduler.definition import TaskDefinition, TaskInfo
from fluid.scheduler.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    FluidError,
    InvalidArgumentError,
    NotFoundError,
)
from fluid.scheduler.limits import PAGE_DEFAULT, PAGE_MAX, check_json, check_text, limits
from fluid.scheduler.models import (
    HeartbeatReply,
    ReportReply,
    RunError,
    RunReport,
    RunRequest,
    TaskState,
    WorkerKind,
    sendable_report,
)
from fluid.scheduler.run import Run, new_run_id, utcnow
from fluid.scheduler.secrets import MASK, masked
from fluid.scheduler.status import DeadLetter, QueueStatus, WorkerStatus
from fluid.service.loops import LoopHealth

from ..metrics import DispatcherMetrics
from . import door, transitions
from .params import check_schema, validate_params
from .ports import Blocked, QueueStore, Registered
from .records import Lease, TaskRecord, WorkerRecord

logger = logging.getLogger("fluid.dispatcher")

HOUSEKEEPING_LOOP = "dispatcher-housekeeping"
# Reads and compare-and-set writes of one change before giving up: another replica must
# have written the same run this many times in between, which only a bug does.
CAS_ATTEMPTS = 50
# The ends the dispatcher decides with no worker executing the run: announced to a worker
# of the task (LeaseRunsResponse.settled), at most SETTLED_PER_REPLY a reply, so that its
# lifecycle handlers hear them.
ANNOUNCED_STATES = frozenset({TaskState.rate_limited, TaskState.interrupted, TaskState.aborted})
SETTLED_PER_REPLY = 64
# Worker records cached at once (Dispatcher._worker); past it, the stale ones are dropped.
MAX_CACHED_WORKERS = 1024
# Leased runs whose report a replica awaits with their snapshot; past it, the oldest go
# (their reports read the run, as any replica's do).
MAX_LEASE_SNAPSHOTS = 10_000

Transition = Callable[[Run, Lease | None], Run | None]
"""What a run as read (with its lease) becomes, or None to leave it: a pure function."""
_FINAL_REPORT_STATES = (TaskState.success, TaskState.failure, TaskState.aborted)
# The states a report may end a run in, as the error that refuses any other names them.
_FINAL_REPORT_NAMES = (
    ", ".join(state.value for state in _FINAL_REPORT_STATES[:-1])
    + f" or {_FINAL_REPORT_STATES[-1].value}"
)


@dataclass(frozen=True, slots=True)
class DispatcherConfig:
    """Timings of leases and of the finished runs the dispatcher remembers."""

    lease_ttl: timedelta = timedelta(seconds=15)
    finished_run_ttl: timedelta = timedelta(hours=1)
    max_lease_wait: timedelta = timedelta(seconds=30)
    # How long a replica trusts its copy of a task's registration (and enabled flag).
    task_cache_ttl: timedelta = timedelta(seconds=1)


class Dispatcher:
    """The queue's rules on top of a ``QueueStore``."""

    def __init__(
        self,
        store: QueueStore,
        config: DispatcherConfig | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.config = config or DispatcherConfig()
        self.clock = clock
        self.metrics = DispatcherMetrics()
        # The background loops of this replica (housekeeping, history forwarder).
        self.health = LoopHealth(owner="dispatcher")
        self._tasks: dict[str, tuple[TaskRecord, float]] = {}
        # Bumped by every change this replica makes to a task: a read that overlapped
        # a change may hold the old record and must not be cached.
        self._task_changes = 0
        # Registered workers, cached like tasks: every lease, report and heartbeat of a
        # worker needs its record, and each read was a store round trip on the run's path.
        self._workers: dict[str, tuple[WorkerRecord, float]] = {}
        # Each run this replica leased, as the lease left it: its report is decided on that
        # snapshot, without reading the run again. The write's compare-and-set on the version
        # catches any change since (every change a report's decision reads bumps it).
        self._leased: dict[str, tuple[Run, Lease]] = {}

    async def _task(self, name: str) -> TaskRecord | None:
        """The task's registration, cached for ``task_cache_ttl``: every queue, lease and
        report needs it, and it changes only when workers register or operators toggle it."""
        cached = self._tasks.get(name)
        if (
            cached is not None
            and time.monotonic() - cached[1] < self.config.task_cache_ttl.total_seconds()
        ):
            return cached[0]
        changes_before = self._task_changes
        record = await self.store.get_task(name)
        if record is None or changes_before != self._task_changes:
            self._tasks.pop(name, None)
        else:
            self._tasks[name] = (record, time.monotonic())
        return record

    def _forget_tasks(self, names: Iterable[str]) -> None:
        self._task_changes += 1
        for name in names:
            self._tasks.pop(name, None)

    # -- workers and tasks -------------------------------------------------------
    async def register_worker(
        self,
        worker_id: str,
        kind: WorkerKind,
        definitions: Sequence[TaskDefinition],
        concurrency: int,
        started: datetime | None = None,
    ) -> None:
        """Record a worker and its tasks. A task keeps the definition of the newest
        worker generation (``started``, the worker's start time; None is older than any):
        a different definition is logged with both versions, and taken only from a
        worker as new as the one that set it."""
        if not worker_id:
            raise InvalidArgumentError("worker_id: required")
        check_text(worker_id, "worker_id", limits().id_chars)
        door.check_concurrency(concurrency)
        door.check_count(len(definitions), "tasks")
        for index, definition in enumerate(definitions):
            door.check_definition(definition, f"tasks[{index}]")
            check_schema(definition.params_schema, f"tasks[{index}].params_schema")
        door.check_started(started, self.clock())
        worker = WorkerRecord(
            worker_id=worker_id,
            kind=kind,
            task_names=frozenset(definition.name for definition in definitions),
            concurrency=max(concurrency, 1),
            last_seen=self.clock(),
        )
        registered = await self.store.register_worker(worker, definitions, started)
        self._workers.pop(worker_id, None)
        self._forget_tasks(definition.name for definition in definitions)
        for definition, outcome in zip(definitions, registered, strict=True):
            _log_changed_definition(worker_id, started, definition, outcome)
        logger.info(
            "worker %s (%s) registered tasks: %s",
            worker_id,
            kind,
            ", ".join(d.name for d in definitions) or "none",
        )

    async def unregister_worker(self, worker_id: str) -> None:
        await self.store.remove_worker(worker_id)
        self._workers.pop(worker_id, None)

    def _alive(self, worker: WorkerRecord, now: datetime) -> bool:
        return now - worker.last_seen <= 3 * self.config.lease_ttl

    async def list_tasks(self) -> list[TaskInfo]:
        now = self.clock()
        workers = [w for w in await self.store.list_workers() if self._alive(w, now)]
        running = await self.store.running_counts()
        return [
            TaskInfo(
                definition=record.definition,
                enabled=record.enabled,
                workers=sum(record.name in worker.task_names for worker in workers),
                running=running.get(record.name, 0),
            )
            for record in await self.store.list_tasks()
        ]

    async def queue_status(self) -> QueueStatus:
        """Runs waiting per priority, each live worker with the runs it holds, the dead
        letters, the snapshots not yet in history and this replica's failing loops."""
        now = self.clock()
        loads = await self.store.worker_loads()
        workers = tuple(
            WorkerStatus(
                worker_id=worker.worker_id,
                kind=worker.kind,
                tasks=tuple(sorted(worker.task_names)),
                concurrency=worker.concurrency,
                running=loads.get(worker.worker_id, 0),
                last_seen=worker.last_seen,
            )
            for worker in sorted(await self.store.list_workers(), key=lambda w: w.worker_id)
            if self._alive(worker, now)
        )
        dead, oldest = await self.store.dead_letter_summary()
        return QueueStatus(
            depths=dict(await self.store.queue_depths()),
            workers=workers,
            dead_letters=dead,
            oldest_dead_letter=oldest,
            outbox_pending=await self.store.outbox_size(),
            degraded_loops=self.health.degraded(),
        )

    async def set_task_enabled(self, name: str, enabled: bool) -> TaskInfo:
        if not name:
            raise InvalidArgumentError("name: required")
        check_text(name, "name", limits().task_name_chars)
        record = await self.store.set_task_enabled(name, enabled)
        self._forget_tasks([name])
        if record is None:
            raise NotFoundError(f"task {name} not found")
        logger.info("task %s %s", name, "enabled" if enabled else "disabled")
        return next(info for info in await self.list_tasks() if info.name == name)

    # -- queueing ------------------------------------------------------------------
    async def queue_run(self, request: RunRequest) -> tuple[Run, bool]:
        run, definition = await self._new_run(request)
        run, created = await self.store.add_run(run, request.idempotency_key, definition.max_queued)
        _check_owner(request, run, created, "")
        return await self.masked(run), created

    async def queue_runs(self, requests: Sequence[RunRequest]) -> list[tuple[Run, bool]]:
        """Queue many runs; one invalid request refuses the batch before anything is queued.

        A run id or key found to belong to another task's run is only known once the
        batch is added: the others are queued then, and the error names the entry.
        """
        most = limits().queue_batch_runs
        if len(requests) > most:
            raise InvalidArgumentError(f"runs: at most {most} per call, got {len(requests)}")
        runs = []
        max_queued: dict[str, int] = {}
        for index, request in enumerate(requests):
            try:
                run, definition = await self._new_run(request)
            except FluidError as error:
                raise type(error)(f"runs[{index}]: {error}") from None
            runs.append(run)
            max_queued[definition.name] = definition.max_queued
        keyed = [
            (run, request.idempotency_key) for run, request in zip(runs, requests, strict=True)
        ]
        queued = await self.store.add_runs(keyed, max_queued)
        for index, (request, (run, created)) in enumerate(zip(requests, queued, strict=True)):
            _check_owner(request, run, created, f"runs[{index}].")
        return [(await self.masked(run), created) for run, created in queued]

    async def _new_run(self, request: RunRequest) -> tuple[Run, TaskDefinition]:
        """The queued run a request asks for, once the task and params are checked, and
        its task's definition."""
        limit = limits()
        if not request.task:
            raise InvalidArgumentError("task: required")
        check_text(request.task, "task", limit.task_name_chars)
        if request.run_id:
            door.check_run_id(request.run_id)
        if request.from_run_id:
            door.check_run_id(request.from_run_id, "from_run_id")
        check_text(request.idempotency_key, "idempotency_key", limit.idempotency_key_chars)
        check_json(request.params, "params", limit.params_bytes)
        if request.execute_after is not None:
            latest = self.clock() + timedelta(days=limit.max_delay_days)
            if request.execute_after > latest:
                raise InvalidArgumentError(
                    f"execute_after: more than {limit.max_delay_days} days ahead"
                )
        record = await self._task(request.task)
        if record is None:
            raise NotFoundError(f"task {request.task} not found: no worker registered it")
        definition = record.definition
        validate_params(definition.name, definition.params_schema, request.params)
        run_id = request.run_id or new_run_id()
        root_run_id = run_id
        if request.from_run_id:
            parent = await self.store.get_run(request.from_run_id)
            root_run_id = (parent.root_run_id or parent.id) if parent else request.from_run_id
        run = Run(
            id=run_id,
            task=definition.name,
            priority=request.priority or definition.priority,
            state=TaskState.queued,
            params=dict(request.params),
            queued=self.clock(),
            execute_after=request.execute_after,
            from_run_id=request.from_run_id,
            root_run_id=root_run_id,
            tags=definition.tags,
            trace_context=dict(request.trace_context or {}),
            version=1,
        )
        return run, definition

    async def masked(self, run: Run) -> Run:
        """``run`` as anyone but its worker sees it: the secrets of its params masked by
        its task's params schema (every value, when the task is not known)."""
        record = await self._task(run.task)
        if record is None:
            return replace(run, params=dict.fromkeys(run.params, MASK))
        return replace(run, params=masked(run.params, record.definition.params_schema))

    async def get_run(self, run_id: str) -> Run:
        """The run, its secrets masked."""
        return await self.masked(await self._stored_run(run_id))

    async def _stored_run(self, run_id: str) -> Run:
        if not run_id:
            raise InvalidArgumentError("run_id: required")
        door.check_run_id(run_id)
        run = await self.store.get_run(run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} not found")
        return run

    async def abort_run(self, run_id: str, reason: str) -> Run:
        """Abort the run; the run as it is now, its secrets masked."""
        check_text(reason, "reason", limits().reason_chars)
        run = await self._stored_run(run_id)
        reason = reason or "aborted by request"
        if run.state is TaskState.running:
            await self.store.request_abort(run_id, reason)
            return await self.masked(run)

        now = self.clock()
        aborted = (
            await self._change(
                [run_id], lambda run, _: transitions.aborted_while_queued(run, reason, now)
            )
        )[run_id]
        if aborted is not None:
            self.metrics.changed(aborted)
            await self._announce([aborted])
            return await self.masked(aborted)
        # It started (or finished) between the read and the update: abort the running one.
        current = await self._stored_run(run_id)
        if current.state is TaskState.running:
            await self.store.request_abort(run_id, reason)
        return await self.masked(current)

    async def watch_run(self, run_id: str) -> AsyncIterator[Run]:
        if not run_id:
            raise InvalidArgumentError("run_id: required")
        door.check_run_id(run_id)
        found = False
        async for run in self.store.watch(run_id):
            found = True
            yield await self.masked(run)
        if not found:
            raise NotFoundError(f"run {run_id} not found")

    async def watch_runs(self, tasks: Sequence[str]) -> AsyncIterator[Run]:
        """Every change of every run (of ``tasks``; empty: all) from now on, masked."""
        door.check_count(len(tasks), "tasks")
        for index, name in enumerate(tasks):
            check_text(name, f"tasks[{index}]", limits().task_name_chars)
        wanted = frozenset(tasks)
        feed = cast(AsyncGenerator[Run, None], self.store.watch_changes())
        async with contextlib.aclosing(feed) as changes:
            async for run in changes:
                if not wanted or run.task in wanted:
                    yield await self.masked(run)

    # -- workers' side -------------------------------------------------------------
    async def _worker(self, worker_id: str) -> WorkerRecord:
        """The worker's record, cached for ``task_cache_ttl``. A worker removed meanwhile
        (by another replica, or as dead) is told so that much later: until then its
        calls are served as before, and its leases are still checked run by run."""
        now, ttl = time.monotonic(), self.config.task_cache_ttl.total_seconds()
        cached = self._workers.get(worker_id)
        if cached is not None and now - cached[1] < ttl:
            return cached[0]
        worker = await self.store.get_worker(worker_id) if worker_id else None
        if worker is None:
            self._workers.pop(worker_id, None)
            raise FailedPreconditionError(f"worker {worker_id!r} is not registered")
        if len(self._workers) >= MAX_CACHED_WORKERS:  # workers come and go: keep the live
            self._workers = {
                key: entry for key, entry in self._workers.items() if now - entry[1] < ttl
            }
        self._workers[worker_id] = (worker, now)
        return worker

    async def lease_runs(
        self, worker_id: str, max_runs: int, wait: timedelta
    ) -> list[tuple[Run, Lease]]:
        if max_runs <= 0:
            raise InvalidArgumentError("max_runs: must be positive")
        door.check_count(max_runs, "max_runs")
        wait = max(wait, timedelta(0))
        worker = await self._worker(worker_id)
        deadline = time.monotonic() + min(wait, self.config.max_lease_wait).total_seconds()
        while True:
            ticket = await self.store.work_ticket()
            records = [await self._task(name) for name in worker.task_names]
            tasks = [
                r
                for r in records
                if r is not None and WorkerKind.of(r.definition.cpu_bound) is worker.kind
            ]
            now = self.clock()
            batch = await self.store.lease_runs(worker, tasks, max_runs, now, self.config.lease_ttl)
            if batch.blocked:
                await self._settle_blocked(batch.blocked, now)
            leased = batch.leased
            for run, lease in leased:
                self.metrics.leased(run)
                self._leased[run.id] = (run, lease)
            while len(self._leased) > MAX_LEASE_SNAPSHOTS:  # reports that never came
                del self._leased[next(iter(self._leased))]
            remaining = deadline - time.monotonic()
            if leased or remaining <= 0:
                return leased
            await self.store.wait_for_work(ticket, remaining)

    def _lease_deadline(
        self, tasks: Mapping[str, TaskRecord | None], now: datetime
    ) -> Callable[[Run], datetime]:
        ttl = self.config.lease_ttl

        def deadline(run: Run) -> datetime:
            # A run past its timeout is not kept alive by heartbeats: the worker should
            # have stopped it, and if it cannot, the lease expires and the run fails.
            record = tasks.get(run.task)
            if record is None or run.start is None:
                return now + ttl
            hard_stop = run.start + timedelta(seconds=record.definition.timeout_seconds) + ttl
            return min(now + ttl, hard_stop)

        return deadline

    async def heartbeat(self, worker_id: str, run_ids: Sequence[str]) -> HeartbeatReply:
        door.check_count(len(run_ids), "run_ids")
        worker = await self._worker(worker_id)
        # The worker runs only tasks it registered: their (cached) definitions suffice,
        # with no read of each run.
        tasks = {name: await self._task(name) for name in worker.task_names}
        now = self.clock()
        return await self.store.extend_leases(
            worker_id, run_ids, self._lease_deadline(tasks, now), now
        )

    async def _settle_blocked(self, blocked: Sequence[Blocked], now: datetime) -> None:
        """Decide what the runs the lease step blocked become (aborted when their task is
        disabled, retried later or rate_limited when it is at max_concurrency)."""
        tasks = {item.run_id: item.task for item in blocked}

        def decide(run: Run, lease: Lease | None) -> Run | None:
            task = tasks[run.id]
            if run.state is not TaskState.queued:
                return None
            return transitions.blocked(run, task.definition, task.enabled, now)

        settled = [run for run in (await self._change(list(tasks), decide)).values() if run]
        for run in settled:
            if tasks[run.id].enabled:
                self.metrics.rate_limited(run.task)
            self.metrics.changed(run)
        await self._announce(settled)

    async def _announce(self, runs: Iterable[Run]) -> None:
        """Keep the runs this dispatcher ended without a worker for a worker of their task
        to hear (their handlers fire there); a run re-queued instead is not announced."""
        ended = [(run.task, run.id) for run in runs if run.state in ANNOUNCED_STATES]
        if ended:
            await self.store.announce(ended)

    async def announce_again(self, runs: Sequence[Run]) -> None:
        """Announce runs taken but not sent (the reply had no room left for them)."""
        await self.store.announce([(run.task, run.id) for run in runs])

    async def take_settled(self, worker_id: str, limit: int = SETTLED_PER_REPLY) -> list[Run]:
        """Runs of the worker's tasks announced since any worker of them last asked."""
        worker = await self._worker(worker_id)
        ids = await self.store.take_announced(sorted(worker.task_names), limit)
        found = await self.store.read_runs(ids) if ids else {}
        # A run purged since it was announced is simply gone.
        return [found[run_id][0] for run_id in ids if run_id in found]

    async def _change(
        self,
        run_ids: Sequence[str],
        decide: Transition,
        read: Mapping[str, tuple[Run, Lease | None]] | None = None,
    ) -> dict[str, Run | None]:
        """Read the runs (or take ``read``, done by the caller), decide what each becomes,
        and write them with a compare-and-set; the runs another replica changed meanwhile
        are read and decided again. Each run's new version, or None where it stays."""
        results: dict[str, Run | None] = {}
        pending = list(dict.fromkeys(run_ids))
        for _ in range(CAS_ATTEMPTS):
            if not pending:
                return results
            found = read if read is not None else await self.store.read_runs(pending)
            read = None
            writes = []
            for run_id in pending:
                current = found.get(run_id)
                if current is None:
                    results[run_id] = None
                    continue
                run, lease = current
                try:
                    new = decide(run, lease)
                except Exception:
                    # A bug in one decision leaves that run as it is, not its batch.
                    logger.exception("deciding what run %s becomes failed; left as it is", run_id)
                    new = None
                if new is None:
                    results[run_id] = None
                else:
                    writes.append(replace(new, version=run.version + 1))
            written = await self.store.write_runs(writes)
            pending = [new.id for new, ok in zip(writes, written, strict=True) if not ok]
            results.update((new.id, new) for new, ok in zip(writes, written, strict=True) if ok)
        raise RuntimeError(f"runs {sorted(pending)} kept changing: gave up after {CAS_ATTEMPTS}")

    async def _definitions(
        self, found: Mapping[str, tuple[Run, Lease | None]]
    ) -> dict[str, TaskDefinition | None]:
        """The definitions of the tasks of the runs read (cached, so mostly no I/O)."""
        definitions: dict[str, TaskDefinition | None] = {}
        for name in {run.task for run, _ in found.values()}:
            record = await self._task(name)
            definitions[name] = record.definition if record else None
        return definitions

    async def report(self, worker_id: str, run_id: str, attempt: int, report: RunReport) -> bool:
        """Apply a worker's report; False when the worker no longer holds the run."""
        return not (await self.report_all(worker_id, [(run_id, attempt, report)])).ignored

    async def report_all(
        self, worker_id: str, sent: Sequence[tuple[str, int, RunReport]]
    ) -> ReportReply:
        """Apply a batch of reports (one read and one write round trip for all of them).

        Each report is decided on its own: a malformed one fails its run with the reason
        instead of refusing the batch, so one bad report never blocks a worker's others.
        """
        door.check_count(len(sent), "reports")
        await self._worker(worker_id)
        rejected: list[tuple[str, str]] = []
        reports: list[tuple[str, int, RunReport]] = []
        for index, (run_id, attempt, report) in enumerate(sent):
            if not run_id:
                rejected.append(("", f"reports[{index}].run_id: required"))
                continue
            decided, problem = _decided_report(report, f"reports[{index}]")
            if problem:
                rejected.append((run_id, problem))
            reports.append((run_id, attempt, decided))
        now = self.clock()
        by_run = {run_id: (attempt, report) for run_id, attempt, report in reports}
        # The runs this replica leased as their lease left them, one read of the others,
        # the tasks they need, one write: no second pass.
        cached = {
            run_id: snapshot
            for run_id in by_run
            if (snapshot := self._leased.pop(run_id, None)) is not None
        }
        found: dict[str, tuple[Run, Lease | None]] = dict(cached)
        if len(found) < len(by_run):
            found.update(await self.store.read_runs([r for r in by_run if r not in cached]))
        definitions = await self._definitions(found)

        def decide(run: Run, lease: Lease | None) -> Run | None:
            attempt, report = by_run[run.id]
            return transitions.reported(
                run, lease, worker_id, attempt, definitions.get(run.task), report, now
            )

        updated = await self._change(list(by_run), decide, found)
        # A report ignored on a snapshot is decided again on the run as stored: no write
        # checked that snapshot (the run may have been leased again, elsewhere, since).
        stale = [run_id for run_id in cached if updated.get(run_id) is None]
        if stale:
            updated.update(await self._change(stale, decide))
        for run in updated.values():
            if run is not None:
                self.metrics.changed(run)
            if run is not None and run.state is TaskState.queued:
                logger.info("run %s of %s failed, retry %d queued", run.id, run.task, run.attempt)
        return ReportReply(
            ignored=[run_id for run_id, _, _ in reports if updated.get(run_id) is None],
            rejected=rejected,
        )

    async def reject_lease(self, worker_id: str, run: Run, reason: str) -> None:
        """Fail a leased run that cannot be handed to its worker (its message cannot be
        built), so that it does not take the other runs of the reply with it."""
        now = self.clock()
        error = RunError("ParamsRejectedError", reason)

        def reject(current: Run, lease: Lease | None) -> Run | None:
            if not transitions.holds(lease, worker_id, run.attempt):
                return None
            return transitions.rejected(current, error, now)

        updated = (await self._change([run.id], reject))[run.id]
        if updated is not None:
            self.metrics.changed(updated)
            logger.error("run %s of %s cannot be leased: %s", run.id, run.task, reason)

    async def release_runs(self, worker_id: str, run_ids: Sequence[str]) -> list[str]:
        door.check_count(len(run_ids), "run_ids")
        now = self.clock()

        def give_back(current: Run, lease: Lease | None) -> Run | None:
            if lease is None or not transitions.holds(lease, worker_id):
                return None
            return transitions.released(current, lease.abort_reason, now)

        changed = await self._change(run_ids, give_back)
        return [run_id for run_id in dict.fromkeys(run_ids) if changed.get(run_id) is not None]

    # -- housekeeping --------------------------------------------------------------
    async def expire_leases(self, limit: int = 1000) -> int:
        """Interrupt (and re-queue under the retry policy) runs whose lease ran out."""
        now = self.clock()
        count = 0
        expired = {lease.run_id: lease for lease in await self.store.expired_leases(now, limit)}
        found = await self.store.read_runs(list(expired))
        definitions = await self._definitions(found)

        def decide(run: Run, held: Lease | None) -> Run | None:
            worker_id = expired[run.id].worker_id
            task = definitions.get(run.task)
            return transitions.expired(run, held, worker_id, task, now, self.config.lease_ttl)

        changed = await self._change(list(expired), decide, found)
        await self._announce(run for run in changed.values() if run is not None)
        for run_id, updated in changed.items():
            lease = expired[run_id]
            if updated is not None:
                count += 1
                self.metrics.lease_expired(updated)
                self.metrics.changed(updated)
                logger.warning(
                    "run %s of %s lost its lease (worker %s): now %s",
                    updated.id,
                    updated.task,
                    lease.worker_id,
                    updated.state,
                )
        return count

    async def purge_finished(self) -> int:
        return await self.store.purge_finished(self.clock() - self.config.finished_run_ttl, 10_000)

    async def run_housekeeping(self, interval: float) -> None:
        """Expire leases and forget old finished runs every ``interval`` seconds, forever
        (cancel to stop)."""
        while True:
            try:
                await self.expire_leases()
                await self.purge_finished()
                self.metrics.queue_depths(await self.store.queue_depths())
                self.metrics.dead_letters((await self.store.dead_letter_summary())[0])
                self.metrics.outbox_pending(await self.store.outbox_size())
            except Exception as error:
                self.health.failed(HOUSEKEEPING_LOOP, error)
            else:
                self.health.ok(HOUSEKEEPING_LOOP)
            await asyncio.sleep(interval)

    # -- dead letters --------------------------------------------------------------
    async def dead_letters(self, limit: int, cursor: str) -> tuple[list[DeadLetter], str]:
        """A page of dead letters, oldest first, and the cursor of the next ("" at the end)."""
        if limit < 0 or limit > PAGE_MAX:
            raise InvalidArgumentError(f"limit: between 0 and {PAGE_MAX}")
        door.check_cursor(cursor)
        size = limit or PAGE_DEFAULT
        page = await self.store.dead_letters(size + 1, cursor)
        more = len(page) > size
        page = page[:size]
        return page, page[-1].id if more else ""

    async def retry_dead_letters(self, ids: Sequence[str], every: bool) -> int:
        chosen = _chosen_letters(ids, every)
        retried = await self.store.retry_dead_letters(chosen)
        if retried:
            logger.info("%d dead letter(s) sent to history again", retried)
        return retried

    async def drop_dead_letters(self, ids: Sequence[str], every: bool) -> int:
        chosen = _chosen_letters(ids, every)
        dropped = await self.store.drop_dead_letters(chosen)
        if dropped:
            logger.warning("%d dead letter(s) dropped", dropped)
        return dropped


def _log_changed_definition(
    worker_id: str, started: datetime | None, definition: TaskDefinition, outcome: Registered
) -> None:
    """Warn when a registration differs from the definition stored before: an operator
    sees every change of a task's definition, with both versions, and who made it."""
    before = outcome.before
    if before is None or before == definition:
        return
    changes = "; ".join(
        f"{item.name}: {getattr(before, item.name)!r} -> {getattr(definition, item.name)!r}"
        for item in fields(TaskDefinition)
        if getattr(before, item.name) != getattr(definition, item.name)
    )
    worker = f"worker {worker_id} (started {_generation(started)})"
    stored = f"the definition of generation {_generation(outcome.generation)}"
    if outcome.taken:
        logger.warning("task %s: %s replaced %s: %s", definition.name, worker, stored, changes)
    else:
        logger.warning(
            "task %s: %s registers another definition, kept %s (newer): %s",
            definition.name,
            worker,
            stored,
            changes,
        )


def _generation(started: datetime | None) -> str:
    return started.isoformat() if started is not None else "unknown"


def _chosen_letters(ids: Sequence[str], every: bool) -> Sequence[str] | None:
    """The ids an operator named, or None for all of them."""
    if every:
        if ids:
            raise InvalidArgumentError("ids: give ids or all, not both")
        return None
    if not ids:
        raise InvalidArgumentError("ids: name the dead letters, or set all")
    door.check_letter_ids(ids)
    return ids


def _check_owner(request: RunRequest, run: Run, created: bool, prefix: str) -> None:
    """An existing run found by id or key must be a run of the requested task: another
    task's run is a conflict, not an answer."""
    if created or run.task == request.task:
        return
    field = "run_id" if request.run_id == run.id else "idempotency_key"
    raise AlreadyExistsError(f"{prefix}{field}: already used by run {run.id} of task {run.task}")


def _decided_report(report: RunReport, field: str) -> tuple[RunReport, str]:
    """The report the dispatcher applies for a report, and why it differs from what was
    sent ("" when it does not): a run reported in a non-final state fails, and the
    result and texts go through the same limits as on the worker."""
    if report.state not in _FINAL_REPORT_STATES:
        problem = f"{field}.state: must be {_FINAL_REPORT_NAMES}, not {report.state}"
        return RunReport(TaskState.failure, error=RunError("ReportRejectedError", problem)), problem
    decided, problem = sendable_report(report)
    return decided, f"{field}.{problem}" if problem else ""
