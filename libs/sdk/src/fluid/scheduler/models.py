"""Value types of the programming model: states, priorities, retry policies, errors."""

from __future__ import annotations

import enum
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import InvalidArgumentError
from .limits import check_json, json_size, limits, storable_text, truncated

# A task's timeout when it sets none (the seed's default), wherever a definition is made.
DEFAULT_TIMEOUT_SECONDS = 60.0


class TaskState(enum.StrEnum):
    """Lifecycle state of a run."""

    init = "init"
    queued = "queued"
    running = "running"
    success = "success"
    failure = "failure"
    aborted = "aborted"
    rate_limited = "rate_limited"
    interrupted = "interrupted"

    @property
    def is_done(self) -> bool:
        """Whether a run in this state is finished: anything but init, queued and running."""
        return self not in _LIVE_STATES

    @property
    def is_failure(self) -> bool:
        """Whether this is ``failure`` (aborted, interrupted and rate-limited runs did not fail)."""
        return self is TaskState.failure

    def path_to(self, target: TaskState) -> list[TaskState]:
        """The states a run passes through to reach ``target`` (``target`` last).

        Same state is a no-op (empty path); init and queued pass through the states in
        between; leaving a terminal state, or going back, raises ``InvalidTransition``.
        """
        if target is self:
            return []
        if self.is_done or target in (TaskState.init,):
            raise InvalidTransition(self, target)
        order = _LIVE_ORDER.index(self)
        target_order = _LIVE_ORDER.index(target) if target in _LIVE_STATES else len(_LIVE_ORDER)
        if target_order <= order:
            raise InvalidTransition(self, target)
        return [*_LIVE_ORDER[order + 1 : target_order], target]


_LIVE_ORDER = (TaskState.init, TaskState.queued, TaskState.running)
_LIVE_STATES = frozenset(_LIVE_ORDER)


class InvalidTransition(ValueError):
    """A run cannot move from ``current`` to ``target`` (a terminal state, or backwards)."""

    def __init__(self, current: TaskState, target: TaskState) -> None:
        super().__init__(f"a run cannot go from {current} to {target}")
        self.current = current
        self.target = target


class TaskPriority(enum.StrEnum):
    """High runs are served before medium before low; ageing prevents starvation."""

    high = "high"
    medium = "medium"
    low = "low"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a failed attempt is tried again.

    ``max_attempts`` counts retries (the first execution is not one); ``None`` is
    unlimited. The delay before retry ``n`` (1-based) is
    ``min(wait * backoff ** (n - 1), max_wait)`` seconds. ``exceptions`` lists the
    exception types (or their names) that are retried; empty means every exception.
    """

    max_attempts: int | None = None
    wait: float = 1.0
    backoff: float = 1.0
    max_wait: float = 60.0
    exceptions: tuple[type[BaseException] | str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError("max_attempts must be >= 0 or None")
        if self.wait < 0 or self.max_wait < 0 or self.backoff < 1:
            raise ValueError("wait and max_wait must be >= 0 and backoff >= 1")

    @property
    def exception_names(self) -> tuple[str, ...]:
        """The retried exception types by name, as they travel and match ``RunError.type``."""
        return tuple(e if isinstance(e, str) else e.__name__ for e in self.exceptions)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        try:
            return min(self.wait * self.backoff ** max(retry - 1, 0), self.max_wait)
        except OverflowError:
            # The thousandth retry of a doubling wait is past any float: it is max_wait.
            return self.max_wait

    def allows(self, retry: int, error_type: str | None = None) -> bool:
        """Whether retry number ``retry`` may happen after an error of ``error_type``."""
        if self.max_attempts is not None and retry > self.max_attempts:
            return False
        names = self.exception_names
        return not names or error_type is None or error_type in names


@dataclass(frozen=True, slots=True)
class RunError:
    """Why a run failed: exception type, message and traceback."""

    type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> RunError:
        """The error of ``exc``: its class name, its message and its formatted traceback."""
        return cls(
            type=type(exc).__name__,
            message=str(exc),
            traceback="".join(traceback.format_exception(exc)),
        )

    @classmethod
    def timed_out(cls, task: str, seconds: float, how: str = "", traceback: str = "") -> RunError:
        """The error of an attempt that ran past its task's ``timeout_seconds``, whichever
        process noticed; ``how`` says what stopped it."""
        message = f"task {task} timed out after {seconds:g}s"
        return cls("TimeoutError", f"{message}: {how}" if how else message, traceback)


@dataclass(frozen=True, slots=True)
class RunReport:
    """How one attempt of a run ended, as its worker reports it."""

    state: TaskState
    result: Any = None
    error: RunError | None = None
    reason: str = ""
    # The last lines of stdout/stderr of the process that ran the attempt (cpu-bound runs).
    output_tail: tuple[str, ...] = ()


def _storable_json(value: Any) -> Any:
    """``value`` with NUL made storable in every string and key (results are the task's
    own output: they are kept, not refused)."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, Mapping):
        return {storable_text(str(key)): _storable_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable_json(item) for item in value]
    return value


def sendable_report(report: RunReport) -> tuple[RunReport, str]:
    """The report as it may travel and be stored, and why it changed ("" if only cut).

    Text is cut to its limits and NUL made storable; a result that is not JSON (NaN,
    infinities, other types) or is over ``result_bytes`` fails the run with an error
    saying so, the run's other fields kept. Workers apply it before they report and the
    dispatcher again on what it receives, so neither trusts the other's settings.
    """
    limit = limits()
    problem = ""
    state, result, error = report.state, report.result, report.error
    if result is not None:
        result = _storable_json(result)
        try:
            check_json(result, "result", None)
        except InvalidArgumentError as refused:
            problem = str(refused)
            state, result = TaskState.failure, None
            error = RunError("ResultNotSerializableError", problem)
        else:
            size = json_size(result)
            if size > limit.result_bytes:
                problem = (
                    f"result of {size} bytes is over the limit of {limit.result_bytes} "
                    "bytes (FLUID_LIMIT_RESULT_BYTES)"
                )
                state, result = TaskState.failure, None
                error = RunError("ResultTooLargeError", problem)
    if error is not None:
        error = RunError(
            type=truncated(storable_text(error.type), 200),
            message=truncated(storable_text(error.message), limit.error_message_chars),
            traceback=truncated(storable_text(error.traceback), limit.traceback_chars, True),
        )
    tail = report.output_tail[-limit.output_lines :] if limit.output_lines else ()
    return (
        RunReport(
            state=state,
            result=result,
            error=error,
            reason=truncated(storable_text(report.reason), limit.reason_chars),
            output_tail=tuple(
                truncated(storable_text(line), limit.output_line_chars) for line in tail
            ),
        ),
        problem,
    )


@dataclass(frozen=True, slots=True)
class RunRequest:
    """A request to queue one run of ``task``, with every option ``QueueRun`` takes.

    A ``run_id`` or an ``idempotency_key`` makes it queue once however often it is sent.
    """

    task: str
    params: Mapping[str, Any] = field(default_factory=dict)
    priority: TaskPriority | None = None
    run_id: str = ""
    idempotency_key: str = ""
    execute_after: datetime | None = None
    from_run_id: str = ""
    # The W3C trace context the run's execution joins: set by the dispatcher from the
    # caller's span, never sent by callers.
    trace_context: Mapping[str, str] | None = None


class WorkerKind(enum.StrEnum):
    """Which runs a worker executes: a task's ``cpu_bound`` flag picks its workers' kind."""

    io = "io"
    cpu = "cpu"

    @classmethod
    def of(cls, cpu_bound: bool) -> WorkerKind:
        """The kind of worker that executes a task with this ``cpu_bound`` flag."""
        return cls.cpu if cpu_bound else cls.io


@dataclass(frozen=True, slots=True)
class HeartbeatReply:
    """What a heartbeat tells its worker."""

    # Runs aborted from outside, with the reason: cancel them and report them aborted.
    aborts: dict[str, str] = field(default_factory=dict)
    # Runs whose lease this worker lost: cancel them and report nothing.
    lost: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ReportReply:
    """What became of a batch of reports."""

    # Runs whose report was ignored: the worker no longer held their lease.
    ignored: list[str] = field(default_factory=list)
    # (run id, reason) of reports refused as malformed: their runs ended failed.
    rejected: list[tuple[str, str]] = field(default_factory=list)
