"""``every`` and ``crontab``: validation and the next slot they fire at."""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fluid.scheduler import crontab, every
from fluid.scheduler.schedules import EPOCH

ANCHOR = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def test_every_fires_first_after_the_delay() -> None:
    schedule = every(timedelta(minutes=5), delay=timedelta(seconds=30))
    assert schedule.next_slot(ANCHOR, ANCHOR) == ANCHOR + timedelta(seconds=30)


def test_every_without_delay_fires_at_the_anchor_when_asked_before_it() -> None:
    schedule = every(timedelta(minutes=5))
    assert schedule.next_slot(ANCHOR - timedelta(seconds=1), ANCHOR) == ANCHOR


def test_every_slot_is_strictly_after() -> None:
    schedule = every(timedelta(minutes=5), delay=timedelta(seconds=30))
    first = ANCHOR + timedelta(seconds=30)
    assert schedule.next_slot(first, ANCHOR) == first + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("after", "expected_k"),
    [
        (timedelta(seconds=31), 1),
        (timedelta(minutes=5, seconds=29), 1),
        (timedelta(minutes=5, seconds=30), 2),
        (timedelta(minutes=5, seconds=31), 2),
        (timedelta(hours=1, seconds=30), 13),
        (timedelta(days=1, microseconds=1), 288),
    ],
)
def test_every_slots_are_anchor_plus_delay_plus_k_deltas(after: timedelta, expected_k: int) -> None:
    schedule = every(timedelta(minutes=5), delay=timedelta(seconds=30))
    slot = schedule.next_slot(ANCHOR + after, ANCHOR)
    assert slot == ANCHOR + timedelta(seconds=30) + expected_k * timedelta(minutes=5)
    assert slot > ANCHOR + after


def test_every_accepts_seconds_as_numbers() -> None:
    # The seed accepts plain numbers; the annotation only advertises timedelta.
    schedule = every(60, delay=5, jitter=1.5)  # type: ignore[arg-type]
    assert schedule.delta == timedelta(seconds=60)
    assert schedule.delay == timedelta(seconds=5)
    assert schedule.jitter == timedelta(seconds=1.5)
    assert schedule.next_slot(ANCHOR, ANCHOR) == ANCHOR + timedelta(seconds=5)


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(seconds=-1), 0, -5])
def test_every_needs_a_positive_delta(delta: timedelta | int) -> None:
    with pytest.raises(ValueError, match="delta"):
        every(delta)  # type: ignore[arg-type]


def test_every_refuses_negative_delay_and_jitter() -> None:
    with pytest.raises(ValueError):
        every(timedelta(seconds=1), delay=timedelta(seconds=-1))
    with pytest.raises(ValueError):
        every(timedelta(seconds=1), jitter=timedelta(seconds=-1))


def test_every_jitter_is_bounded() -> None:
    assert every(timedelta(seconds=10)).jitter_seconds() == 0.0
    schedule = every(timedelta(seconds=10), jitter=timedelta(seconds=2))
    assert all(0.0 <= schedule.jitter_seconds() <= 2.0 for _ in range(200))


def test_every_str() -> None:
    assert str(every(timedelta(minutes=1))) == "every 0:01:00"


def test_crontab_defaults_to_every_minute_in_utc() -> None:
    schedule = crontab()
    assert schedule.expression == "* * * * *"
    assert schedule.tz == "UTC"
    assert str(schedule) == "crontab * * * * *"


def test_crontab_fields_in_order_and_ints_accepted() -> None:
    schedule = crontab(minute=15, hour="9-17", day="1,15", month="*/3", day_of_week="1-5")
    assert (schedule.minute, schedule.hour, schedule.day, schedule.month) == (
        "15",
        "9-17",
        "1,15",
        "*/3",
    )
    assert schedule.day_of_week == "1-5"
    assert schedule.expression == "15 9-17 1,15 */3 1-5"


def test_crontab_plural_aliases() -> None:
    schedule = crontab(minutes=0, hours="*/6", days="1", months="1-6", days_of_week="*")
    assert schedule.expression == "0 */6 1 1-6 *"
    assert crontab(minute=0, hours="*/6") == crontab(minute=0, hour="*/6")


def test_crontab_plural_alias_fires_on_its_hours() -> None:
    schedule = crontab(minute=0, hours="*/6")
    assert schedule.next_slot(datetime(2024, 1, 1, 6, 0, tzinfo=UTC)) == datetime(
        2024, 1, 1, 12, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"minute": "60"},
        {"hour": "24"},
        {"hour": "*/0"},
        {"day": "0"},
        {"month": "13"},
        {"day_of_week": "8"},
        {"minute": "a"},
        {"minute": ""},
        # A space would smuggle in a sixth (seconds) field: one fire per second.
        {"minute": "0 9"},
        {"hour": "9 *"},
    ],
)
def test_crontab_invalid_expression_raises_value_error(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="crontab"):
        crontab(**fields)


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "", "../etc/passwd"])
def test_crontab_unknown_time_zone_raises_value_error(tz: str) -> None:
    with pytest.raises(ValueError, match="time zone"):
        crontab(0, 9, tz=tz)


def test_crontab_next_slot_is_strictly_after() -> None:
    schedule = crontab(minute="*/15")
    assert schedule.next_slot(datetime(2024, 1, 1, 10, 15, tzinfo=UTC)) == datetime(
        2024, 1, 1, 10, 30, tzinfo=UTC
    )
    assert schedule.next_slot(datetime(2024, 1, 1, 10, 14, 59, 999999, tzinfo=UTC)) == datetime(
        2024, 1, 1, 10, 15, tzinfo=UTC
    )


def test_crontab_fires_at_local_time_in_its_time_zone() -> None:
    rome = ZoneInfo("Europe/Rome")
    schedule = crontab(0, 9, tz="Europe/Rome")
    assert str(schedule) == "crontab 0 9 * * * Europe/Rome"
    # Winter: Rome is UTC+1.
    winter = schedule.next_slot(datetime(2024, 1, 15, 12, 0, tzinfo=UTC))
    assert winter == datetime(2024, 1, 16, 9, 0, tzinfo=rome)
    assert winter.astimezone(UTC) == datetime(2024, 1, 16, 8, 0, tzinfo=UTC)
    # Summer: Rome is UTC+2.
    summer = schedule.next_slot(datetime(2024, 7, 15, 6, 0, tzinfo=UTC))
    assert summer.astimezone(UTC) == datetime(2024, 7, 15, 7, 0, tzinfo=UTC)


def test_crontab_keeps_local_time_across_a_dst_change() -> None:
    schedule = crontab(0, 9, tz="Europe/Rome")
    # Rome moves to summer time in the night of 2024-03-31.
    slot = schedule.next_slot(datetime(2024, 3, 30, 12, 0, tzinfo=UTC))
    assert slot.astimezone(UTC) == datetime(2024, 3, 31, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize("sunday", [0, 7, "0", "7"])
def test_day_of_week_zero_and_seven_are_sunday(sunday: int | str) -> None:
    monday = datetime(2024, 1, 1, tzinfo=UTC)
    slot = crontab(0, 0, day_of_week=sunday).next_slot(monday)
    assert slot == datetime(2024, 1, 7, 0, 0, tzinfo=UTC)
    assert slot.weekday() == 6


def test_crontab_fires_once_per_matching_minute() -> None:
    schedule = crontab(minute="0", hour="9")
    first = schedule.next_slot(datetime(2024, 1, 1, tzinfo=UTC))
    second = schedule.next_slot(first)
    assert second - first == timedelta(days=1)


# -- slots anchored to the epoch, previous slots, the catch-up policy ------------------
def test_every_slots_are_anchored_to_the_unix_epoch_by_default() -> None:
    assert datetime(1970, 1, 1, tzinfo=UTC) == EPOCH
    hourly = every(timedelta(hours=1))
    assert hourly.next_slot(datetime(2024, 5, 1, 10, 20, tzinfo=UTC)) == datetime(
        2024, 5, 1, 11, 0, tzinfo=UTC
    )
    # delay shifts the phase: a quarter past every hour, whenever the scheduler started.
    quarter_past = every(timedelta(hours=1), delay=timedelta(minutes=15))
    assert quarter_past.next_slot(datetime(2024, 5, 1, 10, 20, tzinfo=UTC)) == datetime(
        2024, 5, 1, 11, 15, tzinfo=UTC
    )
    # An interval that does not divide a day keeps its epoch phase across days.
    seven_minutes = every(timedelta(minutes=7))
    slot = seven_minutes.next_slot(datetime(2024, 5, 1, tzinfo=UTC))
    assert (slot - EPOCH) % timedelta(minutes=7) == timedelta(0)


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        (ANCHOR + timedelta(seconds=30), None),  # the first slot is not before itself
        (ANCHOR + timedelta(seconds=31), ANCHOR + timedelta(seconds=30)),
        (ANCHOR + timedelta(minutes=5, seconds=30), ANCHOR + timedelta(seconds=30)),
        (
            ANCHOR + timedelta(minutes=5, seconds=31),
            ANCHOR + timedelta(minutes=5, seconds=30),
        ),
    ],
)
def test_every_previous_slot_is_strictly_before(
    before: datetime, expected: datetime | None
) -> None:
    schedule = every(timedelta(minutes=5), delay=timedelta(seconds=30))
    assert schedule.previous_slot(before, ANCHOR) == expected


def test_crontab_previous_slot_is_strictly_before() -> None:
    schedule = crontab(minute="*/15")
    assert schedule.previous_slot(datetime(2024, 1, 1, 10, 15, tzinfo=UTC)) == datetime(
        2024, 1, 1, 10, 0, tzinfo=UTC
    )
    assert schedule.previous_slot(datetime(2024, 1, 1, 10, 15, 0, 1, tzinfo=UTC)) == datetime(
        2024, 1, 1, 10, 15, tzinfo=UTC
    )


def test_catch_up_is_off_by_default_and_shown_in_words() -> None:
    assert not every(timedelta(seconds=1)).catch_up
    assert not crontab().catch_up
    assert every(timedelta(minutes=1), catch_up=True).catch_up
    assert str(every(timedelta(minutes=1), catch_up=True)) == "every 0:01:00, catch up"
    assert str(crontab(0, 9, tz="Europe/Rome", catch_up=True)) == (
        "crontab 0 9 * * * Europe/Rome, catch up"
    )
    assert crontab(0, 9, catch_up=True) != crontab(0, 9)
