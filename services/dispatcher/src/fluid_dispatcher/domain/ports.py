"""The queue store the domain needs: every implementation (memory, Redis) keeps this
contract, and imports it from here (the domain never imports ``store``).

Methods are coarse and atomic: each one reads and writes what it needs in one step, so
a Redis implementation maps each to one Lua script or MULTI/EXEC, and several dispatcher
replicas can share a store. Decisions belong to the domain (what a report, an abort or a
blocked lease turns a run into): it reads runs with ``read_runs``, decides with the pure
functions of ``domain/transitions.py`` and writes with ``write_runs``, a compare-and-set on
each run's version, so a replica that decided on a stale read simply reads again.

The store keeps its indexes in step with each run's state: a ``queued`` run sits in its
task's ready queue (or the delayed set until ``execute_after``), a ``running`` run has a
lease and counts towards its task's concurrency, a finished run has neither and is kept
for ``finished_run_ttl`` so clients can still read and watch it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from fluid.scheduler.definition import TaskDefinition
from fluid.scheduler.errors import ResourceExhaustedError
from fluid.scheduler.models import HeartbeatReply, TaskPriority
from fluid.scheduler.run import Run
from fluid.scheduler.status import DeadLetter

from .records import Lease, TaskRecord, WorkerRecord

WorkTicket = asyncio.Event
"""Taken before looking for work; set by the first fire after it, so none is missed."""


@dataclass(frozen=True, slots=True)
class Blocked:
    """A ready run the lease step did not lease: its task is disabled or at its
    max_concurrency (``task.enabled`` as read in the same atomic step). It waits, out of
    the ready queue, for the domain to decide what it becomes."""

    run_id: str
    task: TaskRecord


@dataclass(frozen=True, slots=True)
class Registered:
    """What a registration did to one task: its definition and generation as stored
    before (None: a new task, an unknown generation) and whether the registered
    definition was taken."""

    before: TaskDefinition | None
    generation: datetime | None
    taken: bool


@dataclass(frozen=True, slots=True)
class LeaseBatch:
    """What one lease step did: the runs it leased, and the ready runs it blocked."""

    leased: list[tuple[Run, Lease]]
    blocked: list[Blocked]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """An outbox entry: a run snapshot waiting to be delivered to history.

    ``run_id`` and ``version`` are enough to keep only the newest snapshot of each run
    in a batch; ``run()`` decodes the snapshot, which is the costly part (and may fail
    on a snapshot the store cannot decode: it then goes to the dead letters as it is).
    """

    entry_id: str
    run_id: str
    version: int
    run: Callable[[], Run] = field(compare=False)


def queue_full(task: str, waiting: int, max_queued: int) -> ResourceExhaustedError:
    return ResourceExhaustedError(
        f"task {task} has {waiting} runs waiting, its max_queued is {max_queued}; "
        "queue again once its workers caught up"
    )


def check_room(task: str, waiting: int, adding: int, max_queued: int) -> None:
    """Refuse ``adding`` runs of ``task`` when they would take it past ``max_queued``."""
    if max_queued and waiting + adding > max_queued:
        raise queue_full(task, waiting, max_queued)


# A blocked run left without its follow-up (its dispatcher died mid-lease) is queued
# again after this.
BLOCKED_RECOVERY = timedelta(seconds=30)

# Dead letters a store keeps at most; past it the oldest are forgotten (and logged),
# so a history that refuses everything cannot fill the queue store.
MAX_DEAD_LETTERS = 100_000
# Runs announced per task and not yet heard by a worker of it: past this the oldest are
# dropped, so a task no worker leases any more cannot grow the store without bound.
MAX_ANNOUNCED_PER_TASK = 10_000


class QueueStore(Protocol):
    """Durable state of the dispatcher.

    The stores subclass it, so that they share ``add_run`` (``add_runs`` of one run) and
    type checkers hold each of them to the protocol where it is defined.
    """

    async def close(self) -> None: ...

    # -- tasks and workers -------------------------------------------------------
    async def register_worker(
        self,
        worker: WorkerRecord,
        definitions: Sequence[TaskDefinition],
        generation: datetime | None,
    ) -> list[Registered]:
        """Record (or refresh) a worker, and take each of its definitions unless the
        stored one is of a newer generation (None is older than any), atomically per task
        across replicas: what each task was before, in the order of ``definitions``."""

    async def get_worker(self, worker_id: str) -> WorkerRecord | None: ...

    async def remove_worker(self, worker_id: str) -> None: ...

    async def get_task(self, name: str) -> TaskRecord | None: ...

    async def list_tasks(self) -> list[TaskRecord]: ...

    async def list_workers(self) -> list[WorkerRecord]: ...

    async def set_task_enabled(self, name: str, enabled: bool) -> TaskRecord | None: ...

    async def queue_depths(self) -> Mapping[TaskPriority, int]:
        """Runs waiting in the queue (ready or delayed), by priority."""

    async def worker_loads(self) -> Mapping[str, int]:
        """Runs each worker holds a lease on now, by worker id."""

    async def running_counts(self) -> Mapping[str, int]:
        """Runs executing now, by task name."""

    # -- runs --------------------------------------------------------------------
    async def add_run(
        self, run: Run, idempotency_key: str = "", max_queued: int = 0
    ) -> tuple[Run, bool]:
        """Store a new ``queued`` run; when its id or key exists, return that run and False.
        With ``max_queued`` (0: no limit), refuse it (``ResourceExhaustedError``) when its
        task already has that many runs waiting."""
        (added,) = await self.add_runs([(run, idempotency_key)], {run.task: max_queued})
        return added

    async def add_runs(
        self, runs: Sequence[tuple[Run, str]], max_queued: Mapping[str, int] | None = None
    ) -> list[tuple[Run, bool]]:
        """``add_run`` for each (run, idempotency key), in one round trip where possible;
        ``max_queued`` by task name. A batch that would take a task past its
        ``max_queued`` is refused whole, atomically with the count."""

    async def get_run(self, run_id: str) -> Run | None: ...

    async def read_runs(self, run_ids: Sequence[str]) -> dict[str, tuple[Run, Lease | None]]:
        """The runs found among ``run_ids``, each with its lease while it is running, in
        one round trip."""

    async def write_runs(self, runs: Sequence[Run]) -> list[bool]:
        """Store each run's next version, in one round trip: a compare-and-set that takes
        a run only when its ``version`` is one above the stored one (False where the
        stored run moved on meanwhile, or is gone). Indexes, the outbox and watchers
        follow the new state."""

    async def lease_runs(
        self,
        worker: WorkerRecord,
        tasks: Collection[TaskRecord],
        max_runs: int,
        now: datetime,
        lease_ttl: timedelta,
    ) -> LeaseBatch:
        """Take up to ``max_runs`` ready runs of ``tasks`` in score order and lease them
        (each becomes ``transitions.leased(run, worker, now)``).

        A run whose task is disabled or at ``max_concurrency`` is not leased but blocked,
        atomically with the concurrency count, and that task's other runs stay queued for
        a later call. A blocked run the domain does not write within a while (its
        dispatcher died) is queued again.
        """

    async def work_ticket(self) -> WorkTicket:
        """Take before looking for runs: ``wait_for_work`` then misses no run added since."""

    async def wait_for_work(self, ticket: WorkTicket, timeout: float) -> None:
        """Return when a run may have become ready since ``ticket``, or after ``timeout`` s."""

    async def extend_leases(
        self,
        worker_id: str,
        run_ids: Sequence[str],
        deadline: Callable[[Run], datetime],
        now: datetime,
    ) -> HeartbeatReply:
        """Renew the worker's leases on ``run_ids`` and refresh its last_seen."""

    async def request_abort(self, run_id: str, reason: str) -> bool:
        """Mark a running run's lease for abort; False when the run is not running."""

    async def expired_leases(self, now: datetime, limit: int) -> list[Lease]: ...

    async def announce(self, runs: Sequence[tuple[str, str]]) -> None:
        """Keep ``(task, run_id)`` pairs for a worker of the task to hear about (runs the
        dispatcher ended without a worker); at most MAX_ANNOUNCED_PER_TASK per task."""

    async def take_announced(self, task_names: Sequence[str], limit: int) -> list[str]:
        """Up to ``limit`` announced run ids of these tasks, oldest first; each is taken once."""

    async def purge_finished(self, older_than: datetime, limit: int) -> int:
        """Forget finished runs that ended before ``older_than``; history keeps them."""

    def watch_changes(self) -> AsyncIterator[Run]:
        """Every new version of every run from now on, as this store hears of them. The
        stream ends when changes were lost (or the reader fell far behind); too many
        streams at once raise ResourceExhaustedError."""

    def watch(self, run_id: str) -> AsyncIterator[Run]:
        """The run now, then newer versions until it is done (or ends unknown).

        Versions only increase; changes in quick succession may arrive as one (the newest).
        """

    # -- outbox to history -------------------------------------------------------
    async def read_outbox(self, limit: int, wait: float = 0.0) -> list[OutboxEntry]:
        """Up to ``limit`` unacknowledged snapshots, oldest first; when there are none,
        wait up to ``wait`` seconds for new ones. Read but unacknowledged snapshots are
        returned again by the next read."""

    async def ack_outbox(self, entries: Sequence[OutboxEntry]) -> None: ...

    async def outbox_size(self) -> int:
        """How many snapshots still wait for history."""

    # -- dead letters --------------------------------------------------------------
    async def add_dead_letters(
        self, refused: Sequence[tuple[OutboxEntry, str]], now: datetime
    ) -> None:
        """Keep each refused snapshot with its reason as a dead letter, then acknowledge it
        in the outbox (a crash in between leaves it in both: history is idempotent). A
        snapshot no longer in the outbox (another replica settled it) is left alone."""

    async def dead_letters(self, limit: int, after: str = "") -> list[DeadLetter]:
        """Up to ``limit`` dead letters, oldest first, after the one with id ``after``."""

    async def dead_letter_summary(self) -> tuple[int, datetime | None]:
        """How many dead letters there are, and when the oldest was stored."""

    async def retry_dead_letters(self, ids: Sequence[str] | None) -> int:
        """Put these dead letters (None: all) back in the outbox; how many were."""

    async def drop_dead_letters(self, ids: Sequence[str] | None) -> int:
        """Forget these dead letters (None: all); how many were."""
