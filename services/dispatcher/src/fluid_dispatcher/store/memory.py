"""The in-memory queue store: the embedded mode's complete, single-process store.

Every method runs without awaiting between its reads and writes, so each is atomic on
the event loop, exactly as each Redis method is atomic on the server. Heaps are
invalidated lazily: an entry is skipped when its run left the state it was queued in.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from fluid.scheduler import wire
from fluid.scheduler.definition import TaskDefinition
from fluid.scheduler.errors import ResourceExhaustedError
from fluid.scheduler.models import HeartbeatReply, TaskPriority, TaskState
from fluid.scheduler.run import Run
from fluid.scheduler.status import DeadLetter

from ..domain import transitions
from ..domain.ordering import ready_score
from ..domain.ports import (
    BLOCKED_RECOVERY,
    MAX_ANNOUNCED_PER_TASK,
    MAX_DEAD_LETTERS,
    Blocked,
    LeaseBatch,
    OutboxEntry,
    QueueStore,
    Registered,
    WorkTicket,
    check_room,
)
from ..domain.records import Lease, TaskRecord, WorkerRecord, newer
from .feed import ChangeFeed, drain
from .signals import Signal, newer_versions

# Runs held at most (queued, running and finished ones not purged yet): past it new runs
# are refused, so a flood cannot grow the process until it is killed
# (FLUID_MEMORY_MAX_RUNS defaults to it).
DEFAULT_MAX_RUNS = 1_000_000


class MemoryQueueStore(QueueStore):
    """A ``QueueStore`` held in this process's memory."""

    def __init__(self, *, outbox: bool = True, max_runs: int = DEFAULT_MAX_RUNS) -> None:
        self.max_runs = max_runs
        self._tasks: dict[str, TaskRecord] = {}
        self._workers: dict[str, WorkerRecord] = {}
        self._runs: dict[str, Run] = {}
        self._idempotency: dict[str, str] = {}
        self._keys_by_run: dict[str, str] = {}
        self._leases: dict[str, Lease] = {}
        self._running: Counter[str] = Counter()
        # Runs waiting (ready, delayed or blocked) per task, for max_queued.
        self._queued: Counter[str] = Counter()
        self._seq = itertools.count()
        # Per task: (score, seq, run_id, version). The version invalidates stale entries.
        self._ready: dict[str, list[tuple[float, int, str, int]]] = {}
        self._delayed: list[tuple[float, int, str, int]] = []
        self._finished: deque[tuple[datetime, str]] = deque()
        self._announced: dict[str, deque[str]] = {}
        self._outbox_enabled = outbox
        self._outbox: deque[OutboxEntry] = deque()
        # Per watched run, the queues of its watchers: each new version, or None once
        # the store closes.
        self._watchers: dict[str, set[asyncio.Queue[Run | None]]] = {}
        self._feed = ChangeFeed()
        self._work = Signal()
        self._outbox_signal = Signal()
        # Insertion order is age order; ids are zero-padded so they sort as they age.
        self._dead: dict[str, tuple[DeadLetter, OutboxEntry]] = {}
        # Runs the lease step blocked, by when: out of the ready queue until written.
        self._blocked: dict[str, datetime] = {}

    async def close(self) -> None:
        for queues in self._watchers.values():
            for queue in queues:
                queue.put_nowait(None)
        self._feed.close()

    # -- tasks and workers -------------------------------------------------------
    async def register_worker(
        self,
        worker: WorkerRecord,
        definitions: Sequence[TaskDefinition],
        generation: datetime | None,
    ) -> list[Registered]:
        registered = []
        for definition in definitions:
            current = self._tasks.get(definition.name)
            taken = current is None or not newer(current.generation, generation)
            if taken:
                enabled = current.enabled if current else True
                self._tasks[definition.name] = TaskRecord(definition, enabled, generation)
            if current is None:
                registered.append(Registered(None, None, taken))
            else:
                registered.append(Registered(current.definition, current.generation, taken))
        self._workers[worker.worker_id] = worker
        return registered

    async def get_worker(self, worker_id: str) -> WorkerRecord | None:
        return self._workers.get(worker_id)

    async def remove_worker(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)

    async def get_task(self, name: str) -> TaskRecord | None:
        return self._tasks.get(name)

    async def list_tasks(self) -> list[TaskRecord]:
        return [self._tasks[name] for name in sorted(self._tasks)]

    async def list_workers(self) -> list[WorkerRecord]:
        return list(self._workers.values())

    async def set_task_enabled(self, name: str, enabled: bool) -> TaskRecord | None:
        record = self._tasks.get(name)
        if record is None:
            return None
        self._tasks[name] = replace(record, enabled=enabled)
        if enabled:
            self._work.fire()
        return self._tasks[name]

    async def queue_depths(self) -> Mapping[TaskPriority, int]:
        depths = Counter(
            run.priority for run in self._runs.values() if run.state is TaskState.queued
        )
        return {priority: depths[priority] for priority in TaskPriority}

    async def worker_loads(self) -> Mapping[str, int]:
        return dict(Counter(lease.worker_id for lease in self._leases.values()))

    async def running_counts(self) -> Mapping[str, int]:
        return dict(self._running)

    # -- runs --------------------------------------------------------------------
    async def add_runs(
        self, runs: Sequence[tuple[Run, str]], max_queued: Mapping[str, int] | None = None
    ) -> list[tuple[Run, bool]]:
        new = Counter(run.task for run, key in runs if not self._exists(run, key))
        # Runs already there (a retried call) are answered, not counted.
        if len(self._runs) + sum(new.values()) > self.max_runs:
            raise ResourceExhaustedError(
                f"the in-memory queue is full: it holds {len(self._runs)} runs, its limit "
                f"is {self.max_runs} (FLUID_MEMORY_MAX_RUNS); use Redis for more"
            )
        for task, count in new.items():
            check_room(task, self._queued[task], count, (max_queued or {}).get(task, 0))
        return [self._add(run, key) for run, key in runs]

    def _exists(self, run: Run, idempotency_key: str) -> bool:
        return run.id in self._runs or (
            bool(idempotency_key) and idempotency_key in self._idempotency
        )

    def _add(self, run: Run, idempotency_key: str) -> tuple[Run, bool]:
        existing_id = self._idempotency.get(idempotency_key) if idempotency_key else None
        existing = self._runs.get(existing_id or run.id)
        if existing is not None:
            return existing, False
        if idempotency_key:
            self._idempotency[idempotency_key] = run.id
            self._keys_by_run[run.id] = idempotency_key
        self._save(run)
        return run, True

    async def get_run(self, run_id: str) -> Run | None:
        return self._runs.get(run_id)

    async def read_runs(self, run_ids: Sequence[str]) -> dict[str, tuple[Run, Lease | None]]:
        return {
            run_id: (self._runs[run_id], self._leases.get(run_id))
            for run_id in run_ids
            if run_id in self._runs
        }

    async def write_runs(self, runs: Sequence[Run]) -> list[bool]:
        written = []
        for run in runs:
            stored = self._runs.get(run.id)
            fits = stored is not None and run.version == stored.version + 1
            if fits:
                self._save(run)
            written.append(fits)
        return written

    def _save(self, run: Run) -> Run:
        """Store a run version and bring every index in line with its state."""
        self._blocked.pop(run.id, None)
        before = self._runs.get(run.id)
        was_queued = before is not None and before.state is TaskState.queued
        if was_queued != (run.state is TaskState.queued):
            self._queued[run.task] += 1 if run.state is TaskState.queued else -1
        if run.state is not TaskState.running and self._leases.pop(run.id, None) is not None:
            self._running[run.task] -= 1
            if self._running[run.task] <= 0:
                del self._running[run.task]
        self._runs[run.id] = run
        if run.state is TaskState.queued:
            self._enqueue(run)
        elif run.is_done:
            self._finished.append((run.end or run.queued or datetime.min, run.id))
        if self._outbox_enabled:
            self._outbox.append(
                OutboxEntry(
                    str(next(self._seq)), run.id, run.version, functools.partial(_same, run)
                )
            )
            self._outbox_signal.fire()
        for queue in self._watchers.get(run.id, ()):
            queue.put_nowait(run)
        self._feed.publish(run)
        return run

    def _enqueue(self, run: Run) -> None:
        due = run.execute_after or run.queued
        assert due is not None, "a queued run has a queued time"
        entry_seq = next(self._seq)
        if run.execute_after is not None:
            # Promoted by the next lease at or after its due time (see _promote_due).
            heapq.heappush(self._delayed, (due.timestamp(), entry_seq, run.id, run.version))
        else:
            heap = self._ready.setdefault(run.task, [])
            heapq.heappush(heap, (ready_score(run.priority, due), entry_seq, run.id, run.version))
        # Long polls wake up to lease it, or to shorten their wait to its due time.
        self._work.fire()

    def _promote_due(self, now: datetime) -> None:
        # A blocked run whose decision never came (its caller failed) is considered again.
        for run_id, since in list(self._blocked.items()):
            if now - since >= BLOCKED_RECOVERY:
                del self._blocked[run_id]
                run = self._runs.get(run_id)
                if run is not None and run.state is TaskState.queued:
                    self._enqueue(run)
        now_ts = now.timestamp()
        while self._delayed and self._delayed[0][0] <= now_ts:
            _, _, run_id, version = heapq.heappop(self._delayed)
            run = self._runs.get(run_id)
            if run is None or run.version != version or run.state is not TaskState.queued:
                continue
            due = run.execute_after or run.queued
            assert due is not None
            heap = self._ready.setdefault(run.task, [])
            heapq.heappush(
                heap, (ready_score(run.priority, due), next(self._seq), run.id, run.version)
            )

    def _head(self, task: str) -> tuple[float, int, str, int] | None:
        heap = self._ready.get(task)
        while heap:
            entry = heap[0]
            run = self._runs.get(entry[2])
            if run is not None and run.version == entry[3] and run.state is TaskState.queued:
                return entry
            heapq.heappop(heap)
        return None

    async def lease_runs(
        self,
        worker: WorkerRecord,
        tasks: Collection[TaskRecord],
        max_runs: int,
        now: datetime,
        lease_ttl: timedelta,
    ) -> LeaseBatch:
        self._promote_due(now)
        by_name = {task.name: task for task in tasks}
        leased: list[tuple[Run, Lease]] = []
        blocked: list[Blocked] = []
        while len(leased) < max_runs:
            heads = [(head, name) for name in by_name if (head := self._head(name)) is not None]
            if not heads:
                break
            (_, _, run_id, _), name = min(heads)
            heapq.heappop(self._ready[name])
            run, task = self._runs[run_id], by_name[name]
            # The stored flag, not the caller's copy: an operator may have just disabled it.
            live = self._tasks.get(name)
            task = replace(task, enabled=live.enabled if live else task.enabled)
            limit = task.definition.max_concurrency
            if not task.enabled or (limit and self._running[name] >= limit):
                # Only the run that met the limit is blocked; the task's others stay queued.
                self._blocked[run_id] = now
                blocked.append(Blocked(run_id, task))
                del by_name[name]
                continue
            running = self._save(
                replace(transitions.leased(run, worker.worker_id, now), version=run.version + 1)
            )
            lease = Lease(run_id, worker.worker_id, run.attempt, now + lease_ttl)
            self._leases[run_id] = lease
            self._running[name] += 1
            leased.append((running, lease))
        return LeaseBatch(leased, blocked)

    async def work_ticket(self) -> WorkTicket:
        return self._work.ticket()

    async def wait_for_work(self, ticket: WorkTicket, timeout: float) -> None:
        if self._delayed:
            timeout = min(timeout, self._delayed[0][0] - _now_ts())
        await Signal.wait(ticket, timeout)

    async def extend_leases(
        self,
        worker_id: str,
        run_ids: Sequence[str],
        deadline: Callable[[Run], datetime],
        now: datetime,
    ) -> HeartbeatReply:
        worker = self._workers.get(worker_id)
        if worker is not None:
            self._workers[worker_id] = replace(worker, last_seen=now)
        aborts: dict[str, str] = {}
        lost: list[str] = []
        for run_id in run_ids:
            lease = self._leases.get(run_id)
            if lease is None or lease.worker_id != worker_id:
                lost.append(run_id)
                continue
            self._leases[run_id] = replace(lease, deadline=deadline(self._runs[run_id]))
            if lease.abort_reason is not None:
                aborts[run_id] = lease.abort_reason
        return HeartbeatReply(aborts=aborts, lost=lost)

    async def request_abort(self, run_id: str, reason: str) -> bool:
        lease = self._leases.get(run_id)
        if lease is None:
            return False
        self._leases[run_id] = replace(lease, abort_reason=reason)
        # A new version, as on Redis: a decision made on the lease before must be made again.
        run = self._runs[run_id]
        self._runs[run_id] = replace(run, version=run.version + 1)
        return True

    async def expired_leases(self, now: datetime, limit: int) -> list[Lease]:
        expired = [lease for lease in self._leases.values() if lease.deadline <= now]
        return sorted(expired, key=lambda lease: lease.deadline)[:limit]

    async def announce(self, runs: Sequence[tuple[str, str]]) -> None:
        for task, run_id in runs:
            self._announced.setdefault(task, deque(maxlen=MAX_ANNOUNCED_PER_TASK)).append(run_id)

    async def take_announced(self, task_names: Sequence[str], limit: int) -> list[str]:
        if limit <= 0 or not task_names:
            return []
        taken: list[str] = []
        for task in task_names:
            waiting = self._announced.get(task)
            while waiting and len(taken) < limit:
                taken.append(waiting.popleft())
        return taken

    async def purge_finished(self, older_than: datetime, limit: int) -> int:
        purged = 0
        while self._finished and purged < limit and self._finished[0][0] < older_than:
            _, run_id = self._finished.popleft()
            run = self._runs.get(run_id)
            if run is None or not run.is_done:
                continue  # re-queued since, or already purged
            del self._runs[run_id]
            key = self._keys_by_run.pop(run_id, None)
            if key is not None:
                self._idempotency.pop(key, None)
            purged += 1
        return purged

    async def watch_changes(self) -> AsyncIterator[Run]:
        queue = self._feed.add()
        try:
            async for run in drain(queue):
                yield run
        finally:
            self._feed.remove(queue)

    async def watch(self, run_id: str) -> AsyncIterator[Run]:
        run = self._runs.get(run_id)
        if run is None:
            return
        queue: asyncio.Queue[Run | None] = asyncio.Queue()
        self._watchers.setdefault(run_id, set()).add(queue)
        try:
            async with contextlib.aclosing(newer_versions(run, queue.get)) as versions:
                async for version in versions:
                    yield version
        finally:
            watchers = self._watchers.get(run_id)
            if watchers is not None:
                watchers.discard(queue)
                if not watchers:
                    del self._watchers[run_id]

    # -- outbox to history -------------------------------------------------------
    async def read_outbox(self, limit: int, wait: float = 0.0) -> list[OutboxEntry]:
        if not self._outbox and wait > 0:
            await Signal.wait(self._outbox_signal.ticket(), wait)
        return list(itertools.islice(self._outbox, limit))

    async def outbox_size(self) -> int:
        return len(self._outbox)

    async def ack_outbox(self, entries: Sequence[OutboxEntry]) -> None:
        acked = {entry.entry_id for entry in entries}
        while self._outbox and self._outbox[0].entry_id in acked:
            self._outbox.popleft()

    # -- dead letters --------------------------------------------------------------
    async def add_dead_letters(
        self, refused: Sequence[tuple[OutboxEntry, str]], now: datetime
    ) -> None:
        waiting = {entry.entry_id for entry in self._outbox}
        for entry, reason in refused:
            if entry.entry_id not in waiting:
                continue  # acknowledged meanwhile: nothing to keep
            letter_id = f"{next(self._seq):016d}"
            task, state, size = _described(entry)
            self._dead[letter_id] = (
                DeadLetter(
                    id=letter_id,
                    run_id=entry.run_id,
                    task=task,
                    state=state,
                    version=entry.version,
                    reason=reason,
                    time=now,
                    size_bytes=size,
                ),
                entry,
            )
        overflow = len(self._dead) - MAX_DEAD_LETTERS
        if overflow > 0:
            logger.warning("dead-letter store full: forgetting the %d oldest", overflow)
            for letter_id in list(itertools.islice(self._dead, overflow)):
                del self._dead[letter_id]
        await self.ack_outbox([entry for entry, _ in refused])

    async def dead_letters(self, limit: int, after: str = "") -> list[DeadLetter]:
        later = (letter for letter_id, (letter, _) in self._dead.items() if letter_id > after)
        return list(itertools.islice(later, limit))

    async def dead_letter_summary(self) -> tuple[int, datetime | None]:
        oldest = next(iter(self._dead.values()), None)
        return len(self._dead), oldest[0].time if oldest else None

    async def retry_dead_letters(self, ids: Sequence[str] | None) -> int:
        chosen = [i for i in (list(self._dead) if ids is None else ids) if i in self._dead]
        for letter_id in chosen:
            _, entry = self._dead.pop(letter_id)
            self._outbox.append(replace(entry, entry_id=str(next(self._seq))))
        if chosen:
            self._outbox_signal.fire()
        return len(chosen)

    async def drop_dead_letters(self, ids: Sequence[str] | None) -> int:
        chosen = [i for i in (list(self._dead) if ids is None else ids) if i in self._dead]
        for letter_id in chosen:
            del self._dead[letter_id]
        return len(chosen)


def _described(entry: OutboxEntry) -> tuple[str, TaskState, int]:
    """Task, state and encoded size of a snapshot, as far as it can be encoded."""
    run = entry.run()
    try:
        size = wire.run_to_pb(run).ByteSize()
    except Exception:  # a snapshot that cannot be encoded is why some letters are here
        size = 0
    return run.task, run.state, size


logger = logging.getLogger("fluid.dispatcher.memory")


def _same(run: Run) -> Run:
    return run


def _now_ts() -> float:
    return time.time()
