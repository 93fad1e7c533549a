"""Periodic schedules: ``every`` (fixed interval) and ``crontab`` (cron fields)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter


@dataclass(frozen=True, slots=True)
class every:
    """Fire every ``delta``; the first fire comes ``delay`` after the scheduler starts.

    ``jitter`` adds a random extra delay of at most that long to each fire.
    """

    delta: timedelta
    delay: timedelta = timedelta(0)
    jitter: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        for name in ("delta", "delay", "jitter"):
            value = getattr(self, name)
            if isinstance(value, int | float):
                object.__setattr__(self, name, timedelta(seconds=value))
        if self.delta <= timedelta(0):
            raise ValueError("every(): delta must be positive")
        if self.delay < timedelta(0) or self.jitter < timedelta(0):
            raise ValueError("every(): delay and jitter must not be negative")

    def next_slot(self, after: datetime, anchor: datetime) -> datetime:
        """The first slot strictly after ``after``; slots are ``anchor + delay + k * delta``."""
        first = anchor + self.delay
        if after < first:
            return first
        elapsed = (after - first) // self.delta
        return first + (elapsed + 1) * self.delta

    def jitter_seconds(self) -> float:
        return random.uniform(0, self.jitter.total_seconds()) if self.jitter else 0.0

    def __str__(self) -> str:
        return f"every {self.delta}"


_FIELDS = ("minute", "hour", "day", "month", "day_of_week")


@dataclass(frozen=True, slots=True, init=False)
class crontab:
    """Fire on every minute matching the cron fields, evaluated in time zone ``tz``.

    Fields take ``*``, ``*/n``, ``a-b`` and ``a,b``; day_of_week 0 and 7 are Sunday.
    As in cron, when both ``day`` and ``day_of_week`` are restricted a minute matches
    if either matches. Plural keywords (``hours=``) are accepted as aliases.
    """

    minute: str
    hour: str
    day: str
    month: str
    day_of_week: str
    tz: str

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
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"crontab(): unknown time zone {tz!r}") from exc
        if not croniter.is_valid(self.expression):
            raise ValueError(f"crontab(): invalid cron expression {self.expression!r}")

    @property
    def expression(self) -> str:
        return " ".join(getattr(self, name) for name in _FIELDS)

    def next_slot(self, after: datetime) -> datetime:
        """The first matching minute strictly after ``after`` (an aware datetime)."""
        local = after.astimezone(ZoneInfo(self.tz))
        fire: datetime = croniter(self.expression, local).get_next(datetime)
        return fire

    def __str__(self) -> str:
        tz = "" if self.tz == "UTC" else f" {self.tz}"
        return f"crontab {self.expression}{tz}"


Scheduler = every | crontab
