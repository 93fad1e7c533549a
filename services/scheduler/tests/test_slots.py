"""Slot arithmetic: anchored ``every`` slots, crontab fields and zones, missed and live slots."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fluid.scheduler import crontab, every
from fluid.scheduler.schedules import EPOCH, Scheduler
from fluid_scheduler.domain.slots import MAX_LIVE_SLOTS, count_slots, plan_slots, slot_key

from .scheduler_support import T0, at, seconds

ROME = ZoneInfo("Europe/Rome")
NEW_YORK = ZoneInfo("America/New_York")
GRACE = timedelta(seconds=1)


def slots_between(schedule: Scheduler, start: datetime, count: int) -> list[datetime]:
    found, moment = [], start
    for _ in range(count):
        moment = schedule.next_slot(moment)
        found.append(moment)
    return found


# -- every: exact slots on a fixed anchor -----------------------------------------------
def test_every_ten_seconds_fires_at_exact_ten_second_slots() -> None:
    slots = slots_between(every(timedelta(seconds=10)), at(3.7), 4)
    assert seconds(slots) == [10, 20, 30, 40]
    assert all((slot - EPOCH) % timedelta(seconds=10) == timedelta(0) for slot in slots)


def test_every_slots_do_not_depend_on_when_they_are_asked() -> None:
    # Replicas started at different times, or a restart, agree on every slot.
    schedule = every(timedelta(seconds=7), delay=timedelta(seconds=2))
    from_one = slots_between(schedule, at(0), 10)
    from_other = slots_between(schedule, at(12.345), 8)
    assert from_other == [slot for slot in from_one if slot > at(12.345)][:8]


# -- crontab: fields, day / day_of_week, time zones --------------------------------------
@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        # minute
        (crontab(minute="*/15"), datetime(2024, 1, 1, 10, 7, tzinfo=UTC), [(10, 15), (10, 30)]),
        (crontab(minute="5,50"), datetime(2024, 1, 1, 10, 7, tzinfo=UTC), [(10, 50), (11, 5)]),
        # hour
        (crontab(0, "9-10"), datetime(2024, 1, 1, 9, 30, tzinfo=UTC), [(10, 0), (9, 0)]),
    ],
)
def test_crontab_minute_and_hour_fields(
    schedule: crontab, after: datetime, expected: list[tuple[int, int]]
) -> None:
    assert [(s.hour, s.minute) for s in slots_between(schedule, after, 2)] == expected


def test_crontab_day_of_month_and_month_fields() -> None:
    schedule = crontab(0, 0, day="1,15", month="2-3")
    slots = slots_between(schedule, datetime(2024, 1, 20, tzinfo=UTC), 4)
    assert [(s.month, s.day) for s in slots] == [(2, 1), (2, 15), (3, 1), (3, 15)]


def test_crontab_day_of_week_field() -> None:
    weekdays = crontab(30, 8, day_of_week="1-5")  # Monday to Friday
    slots = slots_between(weekdays, datetime(2024, 1, 5, 9, tzinfo=UTC), 3)  # a Friday
    assert [s.strftime("%a %H:%M") for s in slots] == ["Mon 08:30", "Tue 08:30", "Wed 08:30"]


def test_crontab_day_and_day_of_week_both_restricted_match_either() -> None:
    # Cron (and croniter) OR semantics: the 13th of the month, and every Friday.
    schedule = crontab(0, 0, day=13, day_of_week=5)
    slots = slots_between(schedule, datetime(2024, 1, 1, tzinfo=UTC), 5)
    assert [s.day for s in slots] == [5, 12, 13, 19, 26]
    assert [s.strftime("%a") for s in slots] == ["Fri", "Fri", "Sat", "Fri", "Fri"]


def test_crontab_day_restricted_alone_ignores_day_of_week() -> None:
    slots = slots_between(crontab(0, 0, day=13), datetime(2024, 1, 1, tzinfo=UTC), 2)
    assert [(s.month, s.day) for s in slots] == [(1, 13), (2, 13)]


def test_crontab_fires_at_local_time_in_new_york() -> None:
    schedule = crontab(0, 9, tz="America/New_York")
    slot = schedule.next_slot(datetime(2024, 1, 15, 15, tzinfo=UTC))
    assert slot == datetime(2024, 1, 16, 9, tzinfo=NEW_YORK)
    assert slot.astimezone(UTC) == datetime(2024, 1, 16, 14, tzinfo=UTC)


def test_crontab_daily_slot_moves_in_utc_across_the_spring_dst_change() -> None:
    schedule = crontab(0, 9, tz="Europe/Rome")
    before, after = slots_between(schedule, datetime(2024, 3, 30, 0, tzinfo=UTC), 2)
    assert before.astimezone(UTC) == datetime(2024, 3, 30, 8, tzinfo=UTC)  # UTC+1
    assert after.astimezone(UTC) == datetime(2024, 3, 31, 7, tzinfo=UTC)  # UTC+2
    # Same-zone subtraction is wall time in Python: compare the instants in UTC.
    assert after.astimezone(UTC) - before.astimezone(UTC) == timedelta(hours=23)


def test_crontab_local_time_skipped_by_spring_forward_fires_after_the_gap() -> None:
    # Rome jumps from 02:00 to 03:00 on 2024-03-31: 02:30 does not exist that night.
    schedule = crontab(30, 2, tz="Europe/Rome")
    slots = slots_between(schedule, datetime(2024, 3, 30, 12, tzinfo=UTC), 2)
    assert slots[0] == datetime(2024, 3, 31, 3, 0, tzinfo=ROME)
    assert slots[1] == datetime(2024, 4, 1, 2, 30, tzinfo=ROME)


def test_crontab_local_time_repeated_by_fall_back_matches_twice() -> None:
    # Rome goes back from 03:00 to 02:00 on 2024-10-27: 02:30 happens twice (documented).
    schedule = crontab(30, 2, tz="Europe/Rome")
    slots = slots_between(schedule, datetime(2024, 10, 26, 12, tzinfo=UTC), 3)
    assert [slot.astimezone(UTC) for slot in slots] == [
        datetime(2024, 10, 27, 0, 30, tzinfo=UTC),
        datetime(2024, 10, 27, 1, 30, tzinfo=UTC),
        datetime(2024, 10, 28, 1, 30, tzinfo=UTC),
    ]


def test_crontab_hourly_slots_stay_one_hour_apart_across_both_dst_changes() -> None:
    hourly = crontab(0, tz="Europe/Rome")
    for night in (datetime(2024, 3, 30, 22, tzinfo=UTC), datetime(2024, 10, 26, 22, tzinfo=UTC)):
        slots = slots_between(hourly, night, 6)
        gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in itertools.pairwise(slots)}
        assert gaps == {timedelta(hours=1)}


@pytest.mark.parametrize(
    "fields",
    [{"minute": "61"}, {"hour": "25"}, {"day": "32"}, {"month": "0"}, {"day_of_week": "9"}],
)
def test_invalid_crontab_fields_are_refused_when_the_task_is_defined(
    fields: dict[str, Any],
) -> None:
    with pytest.raises(ValueError, match="crontab"):
        crontab(**fields)


# -- keys ----------------------------------------------------------------------------
def test_slot_key_is_the_task_and_the_slot_in_utc() -> None:
    assert slot_key("report", at(1)) == "slot:report:2026-01-01T00:00:01.000000+00:00"
    local = datetime(2026, 1, 1, 1, 0, 1, tzinfo=ROME)  # the same instant, written in Rome
    assert slot_key("report", local) == slot_key("report", at(1))


# -- missed and live slots --------------------------------------------------------------
def test_count_slots_counts_every_slot_in_the_half_open_interval() -> None:
    assert count_slots(every(timedelta(seconds=1)), at(0), at(10)) == 10
    assert count_slots(every(timedelta(seconds=1)), at(0.5), at(10.5)) == 10
    assert count_slots(every(timedelta(seconds=1)), at(10), at(10)) == 0
    assert count_slots(every(timedelta(days=1)), EPOCH - timedelta(days=2), EPOCH) == 1
    assert count_slots(crontab(minute="*/10"), at(0), at(3600)) == 6


def test_plan_fires_the_slot_that_is_due_now() -> None:
    plan = plan_slots(every(timedelta(seconds=1)), at(4), at(5), GRACE)
    assert plan.live == (at(5),)
    assert (plan.missed, plan.latest_missed) == (0, None)
    assert plan.next_slot == at(6)


def test_plan_fires_nothing_before_the_slot() -> None:
    plan = plan_slots(every(timedelta(seconds=1)), at(4), at(4.999), GRACE)
    assert plan.live == ()
    assert plan.next_slot == at(5)


def test_plan_fires_late_slots_within_the_grace() -> None:
    plan = plan_slots(every(timedelta(seconds=1)), at(4), at(6.9), timedelta(seconds=3))
    assert plan.live == (at(5), at(6))
    assert plan.missed == 0


def test_plan_splits_missed_slots_from_live_ones() -> None:
    # Down from just after slot 10 until 60.5: slots 11..59 are older than the grace.
    plan = plan_slots(every(timedelta(seconds=1)), at(10), at(60.5), GRACE)
    assert plan.missed == 49
    assert plan.latest_missed == at(59)
    assert plan.live == (at(60),)
    assert plan.next_slot == at(61)


def test_plan_of_a_crontab_after_a_day_down() -> None:
    nine_am = crontab(0, 9)
    cursor = datetime(2024, 1, 1, 9, tzinfo=UTC)
    plan = plan_slots(nine_am, cursor, datetime(2024, 1, 3, 12, tzinfo=UTC), GRACE)
    assert plan.missed == 2
    assert plan.latest_missed == datetime(2024, 1, 3, 9, tzinfo=UTC)
    assert plan.live == ()
    assert plan.next_slot == datetime(2024, 1, 4, 9, tzinfo=UTC)


def test_plan_bounds_the_live_slots_of_one_pass() -> None:
    schedule = every(timedelta(milliseconds=1))
    plan = plan_slots(schedule, at(0), at(0.5), timedelta(seconds=1))
    assert len(plan.live) == MAX_LIVE_SLOTS
    assert plan.next_slot == plan.live[-1] + timedelta(milliseconds=1)
    assert plan.next_slot <= at(0.5)  # due at once: the next pass goes on


def test_plan_counts_a_long_outage_of_a_fast_schedule_without_walking_it() -> None:
    month = timedelta(days=30)
    plan = plan_slots(every(timedelta(seconds=1)), T0, T0 + month, GRACE)
    # Every slot after T0 up to the boundary (now - 1 s, exclusive); the last two are live.
    assert plan.missed == 30 * 86400 - 2
    assert plan.live == (T0 + month - timedelta(seconds=1), T0 + month)
