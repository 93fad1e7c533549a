"""What the services report about themselves, as the client returns it: the dispatcher's
queue status, its workers and dead letters, the scheduler's schedules and lateness."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .health import DegradedLoop
from .models import TaskPriority, TaskState, WorkerKind
from .schedules import Scheduler


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """A live worker and its load, as the dispatcher sees it."""

    worker_id: str
    kind: WorkerKind
    tasks: tuple[str, ...]
    concurrency: int
    running: int
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A run snapshot history refused, kept with the reason until retried or dropped."""

    id: str
    run_id: str
    task: str
    state: TaskState
    version: int
    reason: str
    time: datetime
    size_bytes: int


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """Runs waiting per priority, the live workers, the dead letters, the snapshots not
    yet in history and the answering dispatcher's failing background loops."""

    depths: dict[TaskPriority, int] = field(default_factory=dict)
    workers: tuple[WorkerStatus, ...] = ()
    dead_letters: int = 0
    oldest_dead_letter: datetime | None = None
    outbox_pending: int = 0
    degraded_loops: tuple[DegradedLoop, ...] = ()


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A scheduled task as the scheduler service sees it."""

    task: str
    # The schedule in words, as ``str(schedule)``.
    description: str = ""
    schedule: Scheduler | None = None
    enabled: bool = True
    # The slot the next run will be queued for (None while disabled).
    next_fire: datetime | None = None
    last_slot: datetime | None = None
    last_run_id: str = ""
    # Slots the current leader found missed since it took the lead.
    missed_slots: int = 0
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class SlotLateness:
    """How late a scheduler queued runs (slot time to run accepted), in seconds."""

    count: int = 0
    p50: float = 0.0
    p99: float = 0.0
    max: float = 0.0


@dataclass(frozen=True, slots=True)
class SchedulerStatus:
    """What a scheduler replica reports: the schedules, who leads, its lateness."""

    schedules: tuple[ScheduleInfo, ...] = ()
    leader_id: str = ""
    replica_id: str = ""
    # Set when the answering replica is the leader.
    leader_since: datetime | None = None
    lateness: SlotLateness = field(default_factory=SlotLateness)
