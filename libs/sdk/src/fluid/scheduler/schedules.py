"""Periodic schedules: ``every`` (fixed interval) and ``crontab`` (cron fields).

A schedule names *slots*: the exact instants a run is due. The scheduler service queues
one run per slot, keyed by task and slot time, so replicas and restarts agree on what
has fired. Slot times never depend on when a scheduler started.

``catch_up`` says what happens to slots that passed while no scheduler could fire them
(downtime longer than the scheduler's misfire grace): skipped (the default) or folded
into exactly one catch-up run for the latest missed slot.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""The anchor of ``every`` slots: fixed, so every replica and every restart agrees."""


@dataclass(frozen=True, slots=True)
class every:
    """Fire every ``delta``, at ``EPOCH + delay + k * delta`` (k = 0, 1, 2, ...).

    Slots are anchored to the Unix epoch, not to when a scheduler started (the seed
    fired ``delay`` after start-up): ``every(timedelta(hours=1))`` fires on the hour (UTC),
    ``every(timedelta(hours=1), delay=timedelta(minutes=15))`` at a quarter past.
    ``delay`` therefore shifts the phase of the slots. ``jitter`` delays each run's
    execution by a random extra of at most that long; the slot itself stays exact.
    """

    delta: timedelta
    delay: timedelta = timedelta(0)
    jitter: timedelta = timedelta(0)
    catch_up: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        for name in ("delta", "delay", "jitter"):
            value = getattr(self, name)
            if isinstance(value, int | float):
                object.__setattr__(self, name, timedelta(seconds=value))
        if self.delta <= timedelta(0):
            raise ValueError("every(): delta must be positive")
        if self.delay < timedelta(0) or self.jitter < timedelta(0):
            raise ValueError("every(): delay and jitter must not be negative")

    def next_slot(self, after: datetime, anchor: datetime = EPOCH) -> datetime:
        """The first slot strictly after ``after``; slots are ``anchor + delay + k * delta``."""
        first = anchor + self.delay
        if after < first:
            return first
        elapsed = (after - first) // self.delta
        return first + (elapsed + 1) * self.delta

    def previous_slot(self, before: datetime, anchor: datetime = EPOCH) -> datetime | None:
        """The last slot strictly before ``before`` (``None`` if there is none)."""
        first = anchor + self.delay
        if before <= first:
            return None
        elapsed, rest = divmod(before - first, self.delta)
        return first + (elapsed if rest else elapsed - 1) * self.delta

    def jitter_seconds(self) -> float:
        """A random extra delay for one run's execution, in seconds: uniform in
        ``[0, jitter]``, 0.0 without jitter."""
        return random.uniform(0, self.jitter.total_seconds()) if self.jitter else 0.0

    def __str__(self) -> str:
        return f"every {self.delta}{_CATCH_UP if self.catch_up else ''}"


_FIELDS = ("minute", "hour", "day", "month", "day_of_week")
_CATCH_UP = ", catch up"


@dataclass(frozen=True, slots=True, init=False)
class crontab:
    """Fire on every minute matching the cron fields, evaluated in time zone ``tz``.

    Fields take ``*``, ``*/n``, ``a-b`` and ``a,b``; day_of_week 0 and 7 are Sunday.
    As in cron (and croniter's default), when both ``day`` and ``day_of_week`` are
    restricted a minute matches if *either* matches: ``crontab(0, 0, day=13,
    day_of_week=5)`` fires on the 13th and on every Friday. Plural keywords (``hours=``)
    are accepted as aliases.

    Daylight saving time follows croniter: a local time skipped when clocks go forward
    fires at the first instant after the gap (02:30 becomes 03:00), and a local time
    repeated when clocks go back matches both times, so a daily job inside the repeated
    hour fires twice that night. Use ``tz="UTC"`` for jobs that must never do either.
    """

    minute: str
    hour: str
    day: str
    month: str
    day_of_week: str
    tz: str
    catch_up: bool

    def __init__(
        self,
        minute: str | int = "*",
        hour: str | int = "*",
        day: str | int = "*",
        month: str | int = "*",
        day_of_week: str | int = "*",
        tz: str = "UTC",
        *,
        minutes: str | int | None = None,
        hours: str | int | None = None,
        days: str | int | None = None,
        months: str | int | None = None,
        days_of_week: str | int | None = None,
        catch_up: bool = False,
    ) -> None:
        values = [minute, hour, day, month, day_of_week]
        for index, alias in enumerate((minutes, hours, days, months, days_of_week)):
            if alias is not None:
                values[index] = alias
        for name, value in zip(_FIELDS, values, strict=True):
            text = str(value).strip()
            if not text or any(char.isspace() for char in text):
                # A space would shift the fields: croniter reads 6 fields as seconds.
                raise ValueError(f"crontab(): invalid {name} field {text!r}")
            object.__setattr__(self, name, text)
        object.__setattr__(self, "tz", tz)
        object.__setattr__(self, "catch_up", catch_up)
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"crontab(): unknown time zone {tz!r}") from exc
        # Imported here: croniter (and dateutil) cost every task module tens of ms to
        # import, which a fresh cpu-bound process pays per run.
        from croniter import croniter

        if not croniter.is_valid(self.expression):
            raise ValueError(f"crontab(): invalid cron expression {self.expression!r}")

    @property
    def expression(self) -> str:
        """The five cron fields as one expression (``"0 */2 * * 1-5"``), as croniter reads it."""
        return " ".join(getattr(self, name) for name in _FIELDS)

    def next_slot(self, after: datetime) -> datetime:
        """The first matching minute strictly after ``after`` (an aware datetime)."""
        from croniter import croniter

        local = after.astimezone(ZoneInfo(self.tz))
        fire: datetime = croniter(self.expression, local).get_next(datetime)
        return fire

    def previous_slot(self, before: datetime) -> datetime | None:
        """The last matching minute strictly before ``before`` (an aware datetime)."""
        from croniter import croniter

        local = before.astimezone(ZoneInfo(self.tz))
        fire: datetime = croniter(self.expression, local).get_prev(datetime)
        return fire

    def __str__(self) -> str:
        tz = "" if self.tz == "UTC" else f" {self.tz}"
        return f"crontab {self.expression}{tz}{_CATCH_UP if self.catch_up else ''}"


Scheduler = every | crontab
