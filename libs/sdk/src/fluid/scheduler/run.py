"""The run record: one execution request of a task and everything known about it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from .models import RunError, TaskPriority, TaskState

JsonValue = Any
"""A value that survives ``json.dumps``: None, bool, number, str, list or dict of them."""


def new_run_id() -> str:
    """A fresh random run id: 32 lowercase hex characters (a UUID4)."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """A run as the queue and history record it (immutable: changes make a new version)."""

    id: str
    task: str
    priority: TaskPriority = TaskPriority.medium
    state: TaskState = TaskState.init
    # Out of the repr: on a worker the params hold secrets in clear (fluid.scheduler.secrets).
    params: dict[str, JsonValue] = field(default_factory=dict, repr=False)
    queued: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None
    execute_after: datetime | None = None
    attempt: int = 0
    rate_limit_attempt: int = 0
    from_run_id: str = ""
    root_run_id: str = ""
    result: JsonValue = None
    error: RunError | None = None
    reason: str = ""
    tags: frozenset[str] = frozenset()
    trace_context: dict[str, str] = field(default_factory=dict)
    worker_id: str = ""
    version: int = 0
    # The last output lines of the attempt's process (cpu-bound runs), oldest first.
    output_tail: tuple[str, ...] = ()

    @property
    def is_done(self) -> bool:
        """Whether the run's state is terminal: anything but init, queued or running."""
        return self.state.is_done

    @property
    def is_failure(self) -> bool:
        """Whether the run failed (``failure`` only: aborted, interrupted and rate-limited
        runs did not)."""
        return self.state.is_failure

    @property
    def duration(self) -> float | None:
        """Seconds from start to end of the last attempt, once it ended."""
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds()


SnapshotT = TypeVar("SnapshotT")


def newest_first_per_run(
    snapshots: Iterable[SnapshotT],
    run_id: Callable[[SnapshotT], str],
    version: Callable[[SnapshotT], int],
) -> dict[str, list[SnapshotT]]:
    """Each run's snapshots, highest version first, the first seen first on a tie.

    The one rule for snapshots of a run: the highest version is the run. Whoever keeps
    only one per run (the forwarder) takes the first of each list; history falls back to
    the next one when its store refuses the first.
    """
    per_run: dict[str, list[SnapshotT]] = {}
    for snapshot in snapshots:
        per_run.setdefault(run_id(snapshot), []).append(snapshot)
    for same_run in per_run.values():
        # A stable sort: ties keep the order they were seen in.
        same_run.sort(key=version, reverse=True)
    return per_run
