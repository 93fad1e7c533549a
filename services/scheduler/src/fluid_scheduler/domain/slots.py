"""Slot arithmetic: which slots of a schedule are due now, which were missed, which is next.

A slot is an exact instant a schedule names (``every``: the Unix epoch + delay + k *
delta; ``crontab``: each matching minute in its time zone). Given the task's cursor (the
latest slot already dealt with) and the time now, every later slot up to now is either

- *live*: due at most ``grace`` ago. It is fired, however late; this covers ordinary
  lateness, a slow pass, a short dispatcher outage and a leader failover shorter than
  the grace;
- *missed*: due longer ago than ``grace`` (the scheduler or the dispatcher was down).
  The schedule's policy decides: skip them (default) or fire exactly one catch-up run
  for the latest of them.

A task never fired before has no cursor: the scheduler uses the moment it first saw the
task instead, so a new task starts with its next slot, not with a burst of past ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fluid.scheduler.schedules import EPOCH, Scheduler, every

# A pass fires at most this many live slots of one task; the rest wait for the next pass.
# Live slots span at most the grace, so this only bites for sub-second intervals.
MAX_LIVE_SLOTS = 100
# Counting missed crontab slots walks them one by one; past this the count is a floor.
MAX_COUNTED_SLOTS = 10_000


def slot_key(task: str, slot: datetime) -> str:
    """The idempotency key of a task's run for ``slot``: one run per task and slot.

    The slot is written in UTC with microseconds, so every replica spells it alike.
    """
    return f"slot:{task}:{slot.astimezone(UTC).isoformat(timespec='microseconds')}"


def count_slots(schedule: Scheduler, after: datetime, until: datetime) -> int:
    """How many slots lie in ``(after, until]`` (at most ``MAX_COUNTED_SLOTS`` for crontab)."""
    if until <= after:
        return 0
    if isinstance(schedule, every):
        first = EPOCH + schedule.delay

        def slots_up_to(moment: datetime) -> int:
            return max(0, (moment - first) // schedule.delta + 1)

        return slots_up_to(until) - slots_up_to(after)
    count, slot = 0, schedule.next_slot(after)
    while slot <= until and count < MAX_COUNTED_SLOTS:
        count += 1
        slot = schedule.next_slot(slot)
    return count


@dataclass(frozen=True, slots=True)
class SlotPlan:
    """What a pass at ``now`` does with one task's slots."""

    # Slots due longer ago than the grace, after the cursor.
    missed: int
    # The latest missed slot: the cursor moves there once the missed slots are handled.
    latest_missed: datetime | None
    # Due slots within the grace, oldest first: each gets a run.
    live: tuple[datetime, ...]
    # The first slot after ``now``, or the next live slot when MAX_LIVE_SLOTS cut the list.
    next_slot: datetime


def plan_slots(
    schedule: Scheduler,
    cursor: datetime,
    now: datetime,
    grace: timedelta,
    limit: int = MAX_LIVE_SLOTS,
) -> SlotPlan:
    """Split the slots after ``cursor`` up to ``now`` into missed and live ones."""
    missed, latest_missed = 0, None
    before_boundary = schedule.previous_slot(now - grace)
    if before_boundary is not None and before_boundary > cursor:
        latest_missed = before_boundary
        missed = count_slots(schedule, cursor, before_boundary)
    candidate = schedule.next_slot(latest_missed or cursor)
    live: list[datetime] = []
    while candidate <= now and len(live) < limit:
        live.append(candidate)
        candidate = schedule.next_slot(candidate)
    return SlotPlan(
        missed=missed, latest_missed=latest_missed, live=tuple(live), next_slot=candidate
    )
