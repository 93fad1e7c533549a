"""A history query (filters, page size, position) and the page it answers with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from fluid.scheduler.errors import InvalidArgumentError
from fluid.scheduler.limits import PAGE_DEFAULT, PAGE_MAX
from fluid.scheduler.models import TaskState
from fluid.scheduler.run import JsonValue, Run

from .cursor import Cursor


@dataclass(frozen=True, slots=True, kw_only=True)
class RunQuery:
    """Which stored runs to list, newest queued first; every filter given must match.

    Empty filters match everything. ``limit`` 0 means the default page size, as an
    unset proto field arrives as 0.
    """

    task: str = ""
    states: frozenset[TaskState] = frozenset()
    queued_after: datetime | None = None
    queued_before: datetime | None = None
    params_contain: Mapping[str, JsonValue] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    limit: int = PAGE_DEFAULT
    after: Cursor | None = None

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise InvalidArgumentError("limit: must not be negative")
        if self.limit > PAGE_MAX:
            raise InvalidArgumentError(f"limit: at most {PAGE_MAX}")
        if self.limit == 0:
            object.__setattr__(self, "limit", PAGE_DEFAULT)
        for name in ("queued_after", "queued_before"):
            when = getattr(self, name)
            if when is not None and when.tzinfo is None:
                raise InvalidArgumentError(f"{name}: must be timezone-aware")
        if (
            self.queued_after is not None
            and self.queued_before is not None
            and self.queued_after >= self.queued_before
        ):
            raise InvalidArgumentError(
                "queued_after: must be before queued_before (the time range is empty)"
            )


@dataclass(frozen=True, slots=True)
class RunPage:
    """Runs of one page, newest first; ``next_cursor`` is None on the last page."""

    runs: list[Run]
    next_cursor: Cursor | None = None
