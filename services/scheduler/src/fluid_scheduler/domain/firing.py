"""The scheduler's use cases: learn the scheduled tasks, fire due slots while leading, and
say how each schedule stands (ListSchedules).

Every replica refreshes the task list from the dispatcher; only the leader fires. A fire
queues a run with the idempotency key ``slot:<task>:<slot>`` and ``execute_after`` = slot
+ the task's random extra delay (``every(jitter=)``, ``randomize``), so the key stays
exact while the execution spreads out, and a run tells which slot it is for. The task's
cursor moves to the slot once the dispatcher accepted the run, and is written through to
the store, so the next leader starts where this one stopped.

The runs of one pass (every task sharing a slot: ``0 * * * *`` jobs at the top of the
hour) go in one bulk ``QueueRuns`` call: one gRPC call instead of one per task keeps the
last of them as punctual as the first. A bulk call is all or nothing, so a refused one
is retried run by run and only the runs the dispatcher refuses fail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from fluid.scheduler.errors import (
    AlreadyExistsError,
    FluidError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
)
from fluid.scheduler.limits import limits
from fluid.scheduler.models import RunRequest
from fluid.scheduler.schedules import every
from fluid.scheduler.status import ScheduleInfo, SchedulerStatus
from fluid.service.loops import LoopHealth

from ..metrics import LatenessMetric
from .lateness import LatenessWindow
from .leadership import Clock, Leadership
from .ports import SchedulerStore, SlotQueuer, TaskSource
from .records import ScheduledTask, SlotRecord
from .slots import plan_slots, slot_key

logger = logging.getLogger("fluid.scheduling")
T = TypeVar("T")

# A run accepted later than this after its slot is worth a warning line of its own.
LATE_WARNING_SECONDS = 1.0
# The most runs one bulk QueueRuns call carries, below the dispatcher's limit
# (FLUID_LIMIT_QUEUE_BATCH_RUNS): the SDK client sends at most 500 runs per call anyway
# (Client.queue_requests), and this keeps a chunk one call, taken or refused whole.
MAX_BATCH = 500
PASS_LOOP = "scheduler-pass"
REFRESH_LOOP = "scheduler-task-refresh"


@dataclass(frozen=True, slots=True)
class FiringConfig:
    # A due slot is fired up to this late; older ones count as missed (see slots.py).
    # Keep it above the leader lease TTL so a failover loses no slot.
    misfire_grace: timedelta = timedelta(seconds=10)
    # One dispatcher call (QueueRun(s), ListTasks) or store write may take this long before
    # it counts as failed.
    call_timeout: float = 5.0
    # Longest sleep between two passes (``run``); a slot whose QueueRun failed is tried
    # again one tick later.
    tick: float = 0.1
    # Single QueueRun calls in flight at once, when a refused bulk call is retried run by run.
    max_concurrent_queues: int = 64
    # Seconds between two "fired N slots, lateness ..." log lines.
    summary_interval: float = 60.0


@dataclass
class _Progress:
    """A task's slot progress while this replica leads."""

    # When this leader first saw the task: the cursor of a task never fired before.
    seen: datetime
    record: SlotRecord | None = None
    # When the task next needs a pass; None: plan it at the next pass.
    next_due: datetime | None = None
    missed: int = 0
    last_error: str = ""

    @property
    def cursor(self) -> datetime:
        return self.record.cursor if self.record else self.seen


def _count_missed(
    task: ScheduledTask, progress: _Progress, missed: int, latest: datetime, message: str
) -> None:
    """Add ``missed`` slots, the latest at ``latest``, to the task's count (ListSchedules)
    and log ``message`` with the task, the count and that slot."""
    progress.missed += missed
    logger.warning(message, task.name, missed, latest.isoformat())


@dataclass(frozen=True, slots=True)
class _Pass:
    """A pass's decision for one task: the slot its cursor skips to, the runs it queues."""

    task: ScheduledTask
    progress: _Progress
    # Missed slots skipped (no catch_up), or slots passed while disabled.
    skip_to: datetime | None = None
    missed: int = 0
    fires: list[_Fire] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Fire:
    """One run a pass queues: for a live slot, or the catch-up of ``missed`` slots."""

    task: ScheduledTask
    progress: _Progress
    request: RunRequest
    slot: datetime
    missed: int = 0


class SlotFirer:
    """The leader loop: fires each due slot of the scheduled tasks, once, while leading."""

    def __init__(
        self,
        *,
        store: SchedulerStore,
        source: TaskSource,
        queuer: SlotQueuer,
        leadership: Leadership,
        clock: Clock,
        config: FiringConfig | None = None,
    ) -> None:
        self.store = store
        self.source = source
        self.queuer = queuer
        self.leadership = leadership
        self.clock = clock
        self.config = config or FiringConfig()
        self.tasks: dict[str, ScheduledTask] = {}
        self.lateness = LatenessWindow()
        self._recent = LatenessWindow()  # since the last summary line
        self._lateness_metric = LatenessMetric()
        self._progress: dict[str, _Progress] = {}
        self._loaded_term = 0
        self._one_by_one = asyncio.Semaphore(self.config.max_concurrent_queues)
        # The background loops (passes, task refresh) report here: once per incident.
        self.health = LoopHealth(owner="scheduler")

    # -- learning the tasks --------------------------------------------------------
    async def refresh(self) -> None:
        """Read the scheduled tasks from the dispatcher (schedules and enabled flags)."""
        tasks = {task.name: task for task in await self.source.scheduled_tasks()}
        if tasks != self.tasks:
            self.tasks = tasks
            for progress in self._progress.values():
                progress.next_due = None

    # -- firing ----------------------------------------------------------------------
    async def step(self) -> datetime | None:
        """One pass: keep or seek the lease, then, leading, fire every due slot.

        Returns when the earliest task is due again (None when not leading).
        """
        if not await self.leadership.step():
            self._progress.clear()
            return None
        if self._loaded_term != self.leadership.term and not await self._load():
            return None
        return await self._fire_due()

    async def _load(self) -> bool:
        """Start a term from the slot records the previous leader left."""
        try:
            records = await self._bounded(self.store.load_slots())
        except (FluidError, TimeoutError) as error:
            logger.warning("cannot read the slot records yet, not firing: %s", error)
            return False
        now = self.clock.now()
        self._progress = {
            task: _Progress(seen=now, record=record) for task, record in records.items()
        }
        self._loaded_term = self.leadership.term
        return True

    async def _fire_due(self) -> datetime | None:
        now = self.clock.now()
        passes = []
        for name, task in self.tasks.items():
            progress = self._progress.setdefault(name, _Progress(seen=now))
            if progress.next_due is None or progress.next_due <= now:
                passes.append(self._plan(task, progress, now))
        # Queue first, write cursors after: store round trips never delay a run.
        queued = await self._queue([fire for each in passes for fire in each.fires])
        accepted = self.clock.now()
        settles, start = [], 0
        for each in passes:
            settles.append(self._settle(each, queued[start : start + len(each.fires)], accepted))
            start += len(each.fires)
        await asyncio.gather(*settles)
        pending = [
            progress.next_due
            for name, progress in self._progress.items()
            if name in self.tasks and progress.next_due is not None
        ]
        return min(pending, default=None)

    def _plan(self, task: ScheduledTask, progress: _Progress, now: datetime) -> _Pass:
        """What a pass does with a task's due slots: what it skips, which runs it queues."""
        plan = plan_slots(task.schedule, progress.cursor, now, self.config.misfire_grace)
        progress.next_due = plan.next_slot
        if not task.enabled:
            # A disabled task's slots pass on purpose: none is missed, none caught up later.
            passed = plan.live[-1] if plan.live else plan.latest_missed
            return _Pass(task, progress, skip_to=passed)
        fires = [self._fire(task, progress, slot) for slot in plan.live]
        if plan.latest_missed is None:
            return _Pass(task, progress, fires=fires)
        if task.schedule.catch_up:
            catch_up = self._fire(task, progress, plan.latest_missed, missed=plan.missed)
            return _Pass(task, progress, fires=[catch_up, *fires])
        return _Pass(task, progress, plan.latest_missed, plan.missed, fires)

    def _fire(
        self, task: ScheduledTask, progress: _Progress, slot: datetime, missed: int = 0
    ) -> _Fire:
        execute_after = slot + timedelta(seconds=self._extra_delay(task))
        request = RunRequest(
            task.name, {}, idempotency_key=slot_key(task.name, slot), execute_after=execute_after
        )
        return _Fire(task, progress, request, slot, missed)

    async def _queue(self, fires: list[_Fire]) -> list[str | Exception]:
        """Queue every fire of a pass, in bulk: the run id, or the error, of each."""
        size = min(MAX_BATCH, limits().queue_batch_runs)
        chunks = [fires[i : i + size] for i in range(0, len(fires), size)]
        queued = await asyncio.gather(*(self._queue_chunk(chunk) for chunk in chunks))
        return [id_or_error for chunk in queued for id_or_error in chunk]

    async def _queue_chunk(self, fires: list[_Fire]) -> list[str | Exception]:
        requests = [fire.request for fire in fires]
        try:
            if len(requests) == 1:
                return [await self._bounded(self.queuer.queue_request(requests[0]))]
            return list(await self._bounded(self.queuer.queue_requests(requests)))
        except (
            NotFoundError,
            InvalidArgumentError,
            AlreadyExistsError,
            ResourceExhaustedError,
        ) as error:
            if len(requests) == 1:
                return [error]
            # One refused run refuses its whole batch (a task at its max_queued too): queue
            # them one by one, so that only the refused ones fail.
            return list(await asyncio.gather(*(self._queue_one(request) for request in requests)))
        except Exception as error:
            return [error] * len(requests)

    async def _queue_one(self, request: RunRequest) -> str | Exception:
        try:
            async with self._one_by_one:
                return await self._bounded(self.queuer.queue_request(request))
        except Exception as error:
            return error

    async def _settle(
        self, planned: _Pass, queued: list[str | Exception], accepted: datetime
    ) -> None:
        """Move a task's cursor past what it skipped, then over its fired slots in order,
        stopping at the first run that failed to queue."""
        task, progress = planned.task, planned.progress
        if planned.skip_to is not None:
            if not await self._advance(task, progress, planned.skip_to):
                return
            if planned.missed:
                _count_missed(
                    task,
                    progress,
                    planned.missed,
                    planned.skip_to,
                    "%s: skipped %d missed slot(s) up to %s (no catch_up)",
                )
        for fire, id_or_error in zip(planned.fires, queued, strict=True):
            slot = fire.slot
            if isinstance(id_or_error, NotFoundError | InvalidArgumentError):
                # The dispatcher refuses this task's runs (task gone, params without
                # defaults): asking again cannot help, so the slot passes with the reason kept.
                progress.last_error = f"slot {slot.isoformat()}: {id_or_error}"
                logger.error("%s: the run of slot %s was refused: %s", task.name, slot, id_or_error)
                if not await self._advance(task, progress, slot):
                    return
                continue
            if isinstance(id_or_error, Exception):
                # Anything else may pass (dispatcher restarting, network): the slot stays
                # due and is tried again shortly; its key makes a retry that landed harmless.
                progress.last_error = (
                    f"slot {slot.isoformat()}: {id_or_error or type(id_or_error).__name__}"
                )
                logger.warning(
                    "%s: queueing slot %s failed, retrying: %r", task.name, slot, id_or_error
                )
                progress.next_due = accepted + timedelta(seconds=self.config.tick)
                return
            self._record_fired(task, progress, fire, id_or_error, accepted)
            if not await self._advance(task, progress, slot, id_or_error):
                return

    def _record_fired(
        self,
        task: ScheduledTask,
        progress: _Progress,
        fire: _Fire,
        run_id: str,
        accepted: datetime,
    ) -> None:
        """Count a slot whose run was queued: its lateness, or the slots it caught up."""
        slot = fire.slot
        lateness = (accepted - slot).total_seconds()
        if fire.missed:
            # Late by design: a catch-up run would drown the lateness figures.
            _count_missed(
                task,
                progress,
                fire.missed,
                slot,
                "%s: %d slot(s) missed up to %s; queued one catch-up run for that slot",
            )
        else:
            self.lateness.record(lateness)
            self._recent.record(lateness)
            self._lateness_metric.record(task.name, lateness)
            if lateness > LATE_WARNING_SECONDS:
                logger.warning("%s: slot %s queued %.3f s late", task.name, slot, lateness)
        logger.debug(
            "%s: queued run %s for slot %s (%.1f ms)", task.name, run_id, slot, 1e3 * lateness
        )
        progress.last_error = ""

    async def _advance(
        self, task: ScheduledTask, progress: _Progress, slot: datetime, run_id: str = ""
    ) -> bool:
        """Move the task's cursor to ``slot`` (here and in the store); False if deposed."""
        previous = progress.record
        record = SlotRecord(
            cursor=slot,
            last_slot=slot if run_id else (previous.last_slot if previous else None),
            last_run_id=run_id or (previous.last_run_id if previous else ""),
        )
        progress.record = record
        try:
            saved = await self._bounded(
                self.store.save_slot(self.leadership.replica_id, task.name, record)
            )
        except (FluidError, TimeoutError) as error:
            # The run is queued: a next leader may queue this slot again, which its key
            # makes harmless. Losing the lease follows if the store stays away.
            logger.warning("%s: cannot store the cursor at %s: %s", task.name, slot, error)
            return True
        if not saved:
            self.leadership.step_down("the store refused a slot record: another replica leads")
            progress.next_due = None
            return False
        return True

    def _extra_delay(self, task: ScheduledTask) -> float:
        """Seconds between the slot and the run's execution: jitter plus randomize()."""
        delay = task.schedule.jitter_seconds() if isinstance(task.schedule, every) else 0.0
        if task.randomize is not None:
            try:
                delay += max(0.0, float(task.randomize()))
            except Exception:
                logger.exception("%s: randomize() failed; no extra delay", task.name)
        return delay

    async def _bounded(self, call: Awaitable[T]) -> T:
        async with asyncio.timeout(self.config.call_timeout):
            return await call

    # -- running -----------------------------------------------------------------------
    async def run(self) -> None:
        """Pass after pass until cancelled, sleeping until the next due slot (at most a tick).

        Waking at the slot itself, not at the next tick, is what keeps lateness to a few
        milliseconds; the tick bounds how soon a standby notices a free lease.
        """
        next_summary = self.clock.monotonic() + self.config.summary_interval
        while True:
            try:
                wake = await self.step()
            except Exception as error:
                self.health.failed(PASS_LOOP, error)
                wake = None
            else:
                self.health.ok(PASS_LOOP)
            if self.clock.monotonic() >= next_summary:
                next_summary += self.config.summary_interval
                self._log_summary()
            tick = self.config.tick
            delay = tick
            if wake is not None:
                delay = min(tick, max(0.0, (wake - self.clock.now()).total_seconds()))
            await asyncio.sleep(delay)

    async def refresh_forever(self, interval: float) -> None:
        """Refresh the task list every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self._bounded(self.refresh())
            except Exception as error:
                self.health.failed(REFRESH_LOOP, error)
            else:
                self.health.ok(REFRESH_LOOP)
            await asyncio.sleep(interval)

    def _log_summary(self) -> None:
        recent = self._recent.drain()
        if recent.count:
            logger.info(
                "fired %d slot(s); lateness p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                recent.count,
                1e3 * recent.p50,
                1e3 * recent.p99,
                1e3 * recent.max,
            )

    # -- status ------------------------------------------------------------------------
    async def status(self) -> SchedulerStatus:
        """The scheduled tasks with next fire and last slot, as any replica sees them."""
        records: Mapping[str, SlotRecord] = await self.store.load_slots()
        leader = await self.store.leader()
        leading = self.leadership.holds()
        now = self.clock.now()
        schedules = []
        for name in sorted(self.tasks):
            task = self.tasks[name]
            # The leader's own progress is the freshest; a standby reads the stored record.
            progress = self._progress.get(name) if leading else None
            record = progress.record if progress else records.get(name)
            # A task never fired has no cursor: its next slot after now (or after the
            # leader first saw it) comes first.
            cursor = progress.cursor if progress else record.cursor if record else now
            schedules.append(
                ScheduleInfo(
                    task=name,
                    description=str(task.schedule),
                    schedule=task.schedule,
                    enabled=task.enabled,
                    next_fire=self._next_fire(task, cursor, now) if task.enabled else None,
                    last_slot=record.last_slot if record else None,
                    last_run_id=record.last_run_id if record else "",
                    missed_slots=progress.missed if progress else 0,
                    last_error=progress.last_error if progress else "",
                )
            )
        return SchedulerStatus(
            schedules=tuple(schedules),
            leader_id=leader or "",
            replica_id=self.leadership.replica_id,
            leader_since=self.leadership.since if leading else None,
            lateness=self.lateness.summary(),
        )

    def _next_fire(self, task: ScheduledTask, cursor: datetime, now: datetime) -> datetime:
        plan = plan_slots(task.schedule, cursor, now, self.config.misfire_grace)
        if plan.latest_missed is not None and task.schedule.catch_up:
            return plan.latest_missed
        return plan.live[0] if plan.live else plan.next_slot
