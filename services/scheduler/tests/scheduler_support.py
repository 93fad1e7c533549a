"""Test doubles of the scheduler's unit tests: a clock moved by hand, a dispatcher in memory,
and a firer started on them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fluid.scheduler.errors import InvalidArgumentError, ResourceExhaustedError
from fluid.scheduler.models import RunRequest
from fluid_scheduler.domain.firing import FiringConfig, SlotFirer
from fluid_scheduler.domain.leadership import Leadership
from fluid_scheduler.domain.records import ScheduledTask
from fluid_scheduler.store.memory import MemorySchedulerStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
"""A whole minute (and second), so ``every`` slots fall on T0 + whole seconds."""


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class FakeClock:
    """Wall and monotonic time that move together, only when a test says so."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._monotonic = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds
        return self._now

    def move_to(self, when: datetime) -> datetime:
        return self.advance((when - self._now).total_seconds())


@dataclass(frozen=True, slots=True)
class QueuedRun:
    id: str
    task: str
    key: str
    execute_after: datetime
    queued: datetime

    @property
    def slot(self) -> datetime:
        """The slot named by the key ``slot:<task>:<iso time>``."""
        return datetime.fromisoformat(self.key.split(":", 2)[2])


@dataclass
class FakeDispatcher:
    """ListTasks, QueueRun and QueueRuns in memory, with the dispatcher's rules: one run per
    key, and a bulk call that queues all its runs or none.

    ``failures`` are raised by the next calls, one each; runs of the ``refused`` tasks are
    refused (INVALID_ARGUMENT), runs of the ``full`` tasks too (RESOURCE_EXHAUSTED: at
    their max_queued); a call takes ``rpc_seconds`` on the ``clock``.
    """

    clock: FakeClock
    tasks: list[ScheduledTask] = field(default_factory=list)
    runs: dict[str, QueuedRun] = field(default_factory=dict)
    failures: list[Exception] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)
    full: set[str] = field(default_factory=set)
    calls: int = 0
    bulk_calls: int = 0
    rpc_seconds: float = 0.0

    async def scheduled_tasks(self) -> list[ScheduledTask]:
        return list(self.tasks)

    def _call(self, requests: Sequence[RunRequest]) -> None:
        self.calls += 1
        self.clock.advance(self.rpc_seconds)
        if self.failures:
            raise self.failures.pop(0)
        for index, request in enumerate(requests):
            if request.task in self.refused:
                raise InvalidArgumentError(f"runs[{index}]: params.name: field required")
            if request.task in self.full:
                raise ResourceExhaustedError(f"task {request.task} has 3 runs waiting")

    def _add(self, request: RunRequest) -> str:
        key = request.idempotency_key
        if key not in self.runs:
            assert request.execute_after is not None, "a slot's run always has its slot"
            self.runs[key] = QueuedRun(
                f"run-{len(self.runs) + 1}",
                request.task,
                key,
                request.execute_after,
                self.clock.now(),
            )
        return self.runs[key].id

    async def queue_request(self, request: RunRequest) -> str:
        self._call([request])
        return self._add(request)

    async def queue_requests(self, requests: Sequence[RunRequest]) -> list[str]:
        self.bulk_calls += 1
        self._call(requests)
        return [self._add(request) for request in requests]

    def fired(self, task: str) -> list[datetime]:
        """The slots queued for ``task``, in slot order."""
        return sorted(run.slot for run in self.runs.values() if run.task == task)

    def set_enabled(self, name: str, enabled: bool) -> None:
        self.tasks = [
            ScheduledTask(t.name, t.schedule, enabled, t.randomize) if t.name == name else t
            for t in self.tasks
        ]


async def started(
    dispatcher: FakeDispatcher,
    store: MemorySchedulerStore,
    *,
    replica: str = "a",
    ttl: float = 2.0,
    grace: float = 1.0,
) -> SlotFirer:
    """A firer on ``dispatcher``'s clock that has read its tasks once."""
    clock = dispatcher.clock
    firer = SlotFirer(
        store=store,
        source=dispatcher,
        queuer=dispatcher,
        leadership=Leadership(store, replica, timedelta(seconds=ttl), clock),
        clock=clock,
        config=FiringConfig(misfire_grace=timedelta(seconds=grace)),
    )
    await firer.refresh()
    return firer


def seconds(moments: list[datetime]) -> list[float]:
    """Slots as seconds after T0, for readable assertions."""
    return [(moment - T0).total_seconds() for moment in moments]
