"""Conversions between the domain types and the fluid.scheduler.v1 messages.

Kept in one place so the SDK and every service encode a run the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from .definition import TaskDefinition, TaskInfo
from .health import DegradedLoop
from .models import (
    DEFAULT_TIMEOUT_SECONDS,
    RetryPolicy,
    RunError,
    RunReport,
    TaskPriority,
    TaskState,
    WorkerKind,
)
from .run import JsonValue, Run
from .schedules import Scheduler, crontab, every
from .status import (
    DeadLetter,
    QueueStatus,
    ScheduleInfo,
    SchedulerStatus,
    SlotLateness,
    WorkerStatus,
)
from .v1 import dispatcher_pb2, run_pb2, scheduler_pb2, task_pb2

_STATE_TO_PB = {
    TaskState.init: run_pb2.TASK_STATE_INIT,
    TaskState.queued: run_pb2.TASK_STATE_QUEUED,
    TaskState.running: run_pb2.TASK_STATE_RUNNING,
    TaskState.success: run_pb2.TASK_STATE_SUCCESS,
    TaskState.failure: run_pb2.TASK_STATE_FAILURE,
    TaskState.aborted: run_pb2.TASK_STATE_ABORTED,
    TaskState.rate_limited: run_pb2.TASK_STATE_RATE_LIMITED,
    TaskState.interrupted: run_pb2.TASK_STATE_INTERRUPTED,
}
_STATE_FROM_PB = {value: key for key, value in _STATE_TO_PB.items()}
_PRIORITY_TO_PB = {
    TaskPriority.high: run_pb2.TASK_PRIORITY_HIGH,
    TaskPriority.medium: run_pb2.TASK_PRIORITY_MEDIUM,
    TaskPriority.low: run_pb2.TASK_PRIORITY_LOW,
}
_PRIORITY_FROM_PB = {value: key for key, value in _PRIORITY_TO_PB.items()}

# Integers travel as doubles in a Struct; above this they would lose precision.
_MAX_EXACT_INT = 2**53


class WireError(ValueError):
    """A message field that cannot be converted; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def state_to_pb(state: TaskState) -> run_pb2.TaskState.ValueType:
    """The proto enum value of ``state``."""
    return _STATE_TO_PB[state]


def state_from_pb(value: int, field: str = "state") -> TaskState:
    """The ``TaskState`` of a proto enum value; ``WireError`` names ``field`` when it is unknown
    (``TASK_STATE_UNSPECIFIED`` included)."""
    try:
        return _STATE_FROM_PB[value]  # type: ignore[index]
    except KeyError:
        raise WireError(field, f"unknown task state {value}") from None


def priority_to_pb(priority: TaskPriority | None) -> run_pb2.TaskPriority.ValueType:
    """The proto enum value of ``priority``; ``None`` is ``TASK_PRIORITY_UNSPECIFIED``."""
    return run_pb2.TASK_PRIORITY_UNSPECIFIED if priority is None else _PRIORITY_TO_PB[priority]


def priority_from_pb(value: int, field: str = "priority") -> TaskPriority | None:
    """The ``TaskPriority`` of a proto enum value, ``None`` when unspecified; ``WireError``
    names ``field`` when it is unknown."""
    if value == run_pb2.TASK_PRIORITY_UNSPECIFIED:
        return None
    try:
        return _PRIORITY_FROM_PB[value]  # type: ignore[index]
    except KeyError:
        raise WireError(field, f"unknown task priority {value}") from None


def _normalise_numbers(value: Any) -> Any:
    """Struct numbers are doubles: give integral ones back as int, like JSON would."""
    if isinstance(value, float) and value.is_integer() and abs(value) < _MAX_EXACT_INT:
        return int(value)
    if isinstance(value, dict):
        return {key: _normalise_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalise_numbers(item) for item in value]
    return value


def _json_ready(value: Any, field: str) -> Any:
    """Round-trip through JSON so only JSON types reach protobuf (and errors name the field).

    NaN and infinities are refused here: a Struct would carry them, but decoding the
    message (``MessageToDict``) then fails on the receiving side.
    """
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise WireError(field, f"not JSON serialisable: {exc}") from None


def struct_from_dict(params: Mapping[str, Any], field: str = "params") -> struct_pb2.Struct:
    """The Struct of a params mapping; ``WireError`` names ``field`` when a value is not JSON
    (NaN and infinities included)."""
    message = struct_pb2.Struct()
    message.update(_json_ready(dict(params), field))
    return message


def _message_json(message: struct_pb2.Struct | struct_pb2.Value, field: str) -> Any:
    try:
        return _normalise_numbers(json_format.MessageToDict(message))
    except (ValueError, json_format.Error) as exc:
        # A Struct carries what JSON cannot (NaN, infinities): the sender's mistake.
        raise WireError(field, f"not valid JSON: {exc}") from None


def dict_from_struct(message: struct_pb2.Struct, field: str = "params") -> dict[str, JsonValue]:
    """The params mapping of a Struct, integral numbers back as ``int``; ``WireError`` names
    ``field`` when it holds what JSON cannot (NaN, infinities)."""
    result: dict[str, JsonValue] = _message_json(message, field)
    return result


def value_from_json(value: JsonValue, field: str = "result") -> struct_pb2.Value:
    """The proto Value of a JSON value; ``WireError`` names ``field`` when it is not JSON."""
    return json_format.ParseDict(_json_ready(value, field), struct_pb2.Value())


def json_from_value(message: struct_pb2.Value, field: str = "result") -> JsonValue:
    """The JSON value of a proto Value, integral numbers back as ``int``; ``WireError`` names
    ``field`` when it holds what JSON cannot (NaN, infinities)."""
    result: JsonValue = _message_json(message, field)
    return result


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """The Timestamp of ``value`` (a naive datetime is taken as UTC); ``None`` stays ``None``."""
    if value is None:
        return None
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message


def datetime_from(message: timestamp_pb2.Timestamp, field: str = "timestamp") -> datetime:
    """The aware UTC datetime of a Timestamp; ``WireError`` names ``field`` when it is invalid.
    An unset Timestamp reads as the epoch: check ``HasField`` first."""
    try:
        return message.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise WireError(field, f"not a valid timestamp: {exc}") from None


def timedelta_from(message: duration_pb2.Duration, field: str = "duration") -> timedelta:
    """The timedelta of a Duration; ``WireError`` names ``field`` when it is out of range."""
    try:
        return message.ToTimedelta()
    except (ValueError, OverflowError) as exc:
        raise WireError(field, f"not a valid duration: {exc}") from None


def duration(seconds: float | timedelta) -> duration_pb2.Duration:
    """The Duration of ``seconds`` (a number of seconds or a timedelta)."""
    message = duration_pb2.Duration()
    message.FromTimedelta(seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds))
    return message


def error_to_pb(error: RunError | None) -> run_pb2.RunError | None:
    """The proto of ``error``; ``None`` stays ``None``."""
    if error is None:
        return None
    return run_pb2.RunError(type=error.type, message=error.message, traceback=error.traceback)


def error_from_pb(message: run_pb2.RunError) -> RunError:
    """The ``RunError`` of its proto."""
    return RunError(type=message.type, message=message.message, traceback=message.traceback)


def run_to_pb(run: Run) -> run_pb2.Run:
    """The proto of ``run``; ``WireError`` names ``params`` or ``result`` when it is not JSON."""
    message = run_pb2.Run(
        id=run.id,
        task=run.task,
        priority=priority_to_pb(run.priority),
        state=state_to_pb(run.state),
        params=struct_from_dict(run.params),
        queued=timestamp(run.queued),
        start=timestamp(run.start),
        end=timestamp(run.end),
        execute_after=timestamp(run.execute_after),
        attempt=run.attempt,
        rate_limit_attempt=run.rate_limit_attempt,
        from_run_id=run.from_run_id,
        root_run_id=run.root_run_id,
        error=error_to_pb(run.error),
        reason=run.reason,
        tags=sorted(run.tags),
        trace_context=run.trace_context,
        worker_id=run.worker_id,
        version=run.version,
        output_tail=run.output_tail,
    )
    if run.result is not None:
        message.result.CopyFrom(value_from_json(run.result))
    return message


def run_from_pb(message: run_pb2.Run) -> Run:
    """The ``Run`` of its proto (an unspecified priority is ``medium``); ``WireError`` names the
    field (``state``, ``params``, ``result``, a timestamp) that cannot be converted."""

    def when(name: str) -> datetime | None:
        return datetime_from(getattr(message, name), name) if message.HasField(name) else None  # type: ignore[arg-type]

    return Run(
        id=message.id,
        task=message.task,
        priority=priority_from_pb(message.priority) or TaskPriority.medium,
        state=state_from_pb(message.state),
        params=dict_from_struct(message.params),
        queued=when("queued"),
        start=when("start"),
        end=when("end"),
        execute_after=when("execute_after"),
        attempt=message.attempt,
        rate_limit_attempt=message.rate_limit_attempt,
        from_run_id=message.from_run_id,
        root_run_id=message.root_run_id,
        result=json_from_value(message.result) if message.HasField("result") else None,
        error=error_from_pb(message.error) if message.HasField("error") else None,
        reason=message.reason,
        tags=frozenset(message.tags),
        trace_context=dict(message.trace_context),
        worker_id=message.worker_id,
        version=message.version,
        output_tail=tuple(message.output_tail),
    )


def retry_to_pb(policy: RetryPolicy | None) -> task_pb2.RetryPolicy | None:
    """The proto of ``policy``; ``None`` stays ``None``."""
    if policy is None:
        return None
    return task_pb2.RetryPolicy(
        max_attempts=policy.max_attempts,
        wait=duration(policy.wait),
        backoff=policy.backoff,
        max_wait=duration(policy.max_wait),
        exceptions=list(policy.exception_names),
    )


def retry_from_pb(message: task_pb2.RetryPolicy, field: str) -> RetryPolicy:
    """The ``RetryPolicy`` of its proto (an unset backoff is 1.0); ``WireError`` names ``field``
    (or its ``.wait``/``.max_wait``) when the policy is invalid."""
    try:
        return RetryPolicy(
            max_attempts=message.max_attempts if message.HasField("max_attempts") else None,
            wait=timedelta_from(message.wait, f"{field}.wait").total_seconds(),
            backoff=message.backoff or 1.0,
            max_wait=timedelta_from(message.max_wait, f"{field}.max_wait").total_seconds(),
            exceptions=tuple(message.exceptions),
        )
    except WireError:
        raise
    except ValueError as exc:
        raise WireError(field, str(exc)) from None


def schedule_to_pb(schedule: Scheduler | None) -> task_pb2.Schedule | None:
    """The proto of an ``every`` or ``crontab`` schedule; ``None`` for none (or another kind)."""
    if isinstance(schedule, every):
        return task_pb2.Schedule(
            every=task_pb2.EverySchedule(
                interval=duration(schedule.delta),
                delay=duration(schedule.delay),
                jitter=duration(schedule.jitter),
            ),
            catch_up=schedule.catch_up,
        )
    if isinstance(schedule, crontab):
        return task_pb2.Schedule(
            crontab=task_pb2.CrontabSchedule(
                minute=schedule.minute,
                hour=schedule.hour,
                day=schedule.day,
                month=schedule.month,
                day_of_week=schedule.day_of_week,
                tz=schedule.tz,
            ),
            catch_up=schedule.catch_up,
        )
    return None


def schedule_from_pb(message: task_pb2.Schedule, field: str) -> Scheduler | None:
    """The ``every`` or ``crontab`` of its proto, ``None`` when neither is set (empty crontab
    fields are ``*``, an empty tz UTC); ``WireError`` names ``field`` when it is invalid."""
    kind = message.WhichOneof("kind")
    try:
        if kind == "every":
            return every(
                timedelta_from(message.every.interval, f"{field}.every.interval"),
                timedelta_from(message.every.delay, f"{field}.every.delay"),
                timedelta_from(message.every.jitter, f"{field}.every.jitter"),
                catch_up=message.catch_up,
            )
        if kind == "crontab":
            cron = message.crontab
            return crontab(
                cron.minute or "*",
                cron.hour or "*",
                cron.day or "*",
                cron.month or "*",
                cron.day_of_week or "*",
                tz=cron.tz or "UTC",
                catch_up=message.catch_up,
            )
    except ValueError as exc:
        raise WireError(field, str(exc)) from None
    return None


def definition_to_pb(definition: TaskDefinition) -> task_pb2.TaskDefinition:
    """The proto of ``definition``, its params schema as a JSON string."""
    return task_pb2.TaskDefinition(
        name=definition.name,
        module=definition.module,
        short_description=definition.short_description,
        description=definition.description,
        cpu_bound=definition.cpu_bound,
        timeout_seconds=definition.timeout_seconds,
        max_concurrency=definition.max_concurrency,
        max_queued=definition.max_queued,
        priority=priority_to_pb(definition.priority),
        retry=retry_to_pb(definition.retry),
        rate_limit_retry=retry_to_pb(definition.rate_limit_retry),
        tags=sorted(definition.tags),
        params_schema=json.dumps(definition.params_schema),
        schedule=schedule_to_pb(definition.schedule),
    )


def definition_from_pb(message: task_pb2.TaskDefinition, field: str) -> TaskDefinition:
    """The ``TaskDefinition`` of its proto (zero timeout: the default; unspecified priority:
    ``medium``); ``WireError`` names the member of ``field`` that is missing, negative or
    invalid."""
    if not message.name:
        raise WireError(f"{field}.name", "a task needs a name")
    try:
        schema = json.loads(message.params_schema) if message.params_schema else {}
    except RecursionError:
        raise WireError(f"{field}.params_schema", "nested too deep") from None
    except ValueError as exc:
        raise WireError(f"{field}.params_schema", f"not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise WireError(f"{field}.params_schema", "must be a JSON object")
    for name in ("timeout_seconds", "max_concurrency", "max_queued"):
        if getattr(message, name) < 0:
            raise WireError(f"{field}.{name}", "must not be negative")
    return TaskDefinition(
        name=message.name,
        module=message.module,
        short_description=message.short_description,
        description=message.description,
        cpu_bound=message.cpu_bound,
        timeout_seconds=message.timeout_seconds or DEFAULT_TIMEOUT_SECONDS,
        max_concurrency=message.max_concurrency,
        max_queued=message.max_queued,
        priority=priority_from_pb(message.priority, f"{field}.priority") or TaskPriority.medium,
        retry=retry_from_pb(message.retry, f"{field}.retry") if message.HasField("retry") else None,
        rate_limit_retry=(
            retry_from_pb(message.rate_limit_retry, f"{field}.rate_limit_retry")
            if message.HasField("rate_limit_retry")
            else None
        ),
        tags=frozenset(message.tags),
        params_schema=schema,
        schedule=(
            schedule_from_pb(message.schedule, f"{field}.schedule")
            if message.HasField("schedule")
            else None
        ),
    )


def report_to_pb(run_id: str, attempt: int, report: RunReport) -> dispatcher_pb2.RunReport:
    """The proto of a worker's ``report`` on attempt ``attempt`` of run ``run_id``."""
    message = dispatcher_pb2.RunReport(
        run_id=run_id,
        attempt=attempt,
        state=state_to_pb(report.state),
        error=error_to_pb(report.error),
        reason=report.reason,
        output_tail=report.output_tail,
    )
    if report.result is not None:
        message.result.CopyFrom(value_from_json(report.result))
    return message


def report_from_pb(message: dispatcher_pb2.RunReport, field: str) -> RunReport:
    """The ``RunReport`` of its proto (run id and attempt are the caller's to read);
    ``WireError`` names ``field.state`` or ``result`` when either cannot be converted."""
    return RunReport(
        state=state_from_pb(message.state, f"{field}.state"),
        result=json_from_value(message.result) if message.HasField("result") else None,
        error=error_from_pb(message.error) if message.HasField("error") else None,
        reason=message.reason,
        output_tail=tuple(message.output_tail),
    )


def schedule_info_to_pb(info: ScheduleInfo) -> scheduler_pb2.TaskSchedule:
    """The proto of one task's schedule as the scheduler sees it."""
    return scheduler_pb2.TaskSchedule(
        task=info.task,
        description=info.description,
        schedule=schedule_to_pb(info.schedule),
        enabled=info.enabled,
        next_fire_time=timestamp(info.next_fire),
        last_slot_time=timestamp(info.last_slot),
        last_run_id=info.last_run_id,
        missed_slots=info.missed_slots,
        last_error=info.last_error,
    )


def schedule_info_from_pb(message: scheduler_pb2.TaskSchedule, field: str) -> ScheduleInfo:
    """The ``ScheduleInfo`` of its proto; ``WireError`` names ``field.schedule`` when the
    schedule is invalid."""

    def when(name: str) -> datetime | None:
        return datetime_from(getattr(message, name)) if message.HasField(name) else None  # type: ignore[arg-type]

    return ScheduleInfo(
        task=message.task,
        description=message.description,
        schedule=(
            schedule_from_pb(message.schedule, f"{field}.schedule")
            if message.HasField("schedule")
            else None
        ),
        enabled=message.enabled,
        next_fire=when("next_fire_time"),
        last_slot=when("last_slot_time"),
        last_run_id=message.last_run_id,
        missed_slots=message.missed_slots,
        last_error=message.last_error,
    )


def scheduler_status_to_pb(status: SchedulerStatus) -> scheduler_pb2.ListSchedulesResponse:
    """The ``ListSchedules`` response carrying ``status``."""
    lateness = status.lateness
    return scheduler_pb2.ListSchedulesResponse(
        schedules=[schedule_info_to_pb(info) for info in status.schedules],
        leader_id=status.leader_id,
        replica_id=status.replica_id,
        leader_since=timestamp(status.leader_since),
        lateness=scheduler_pb2.SlotLateness(
            count=lateness.count,
            p50=duration(lateness.p50),
            p99=duration(lateness.p99),
            max=duration(lateness.max),
        ),
    )


def scheduler_status_from_pb(message: scheduler_pb2.ListSchedulesResponse) -> SchedulerStatus:
    """The ``SchedulerStatus`` of a ``ListSchedules`` response; ``WireError`` names the
    ``schedules[i]`` member that cannot be converted."""
    lateness = message.lateness
    return SchedulerStatus(
        schedules=tuple(
            schedule_info_from_pb(item, f"schedules[{index}]")
            for index, item in enumerate(message.schedules)
        ),
        leader_id=message.leader_id,
        replica_id=message.replica_id,
        leader_since=(
            datetime_from(message.leader_since) if message.HasField("leader_since") else None
        ),
        lateness=SlotLateness(
            count=lateness.count,
            p50=lateness.p50.ToTimedelta().total_seconds(),
            p99=lateness.p99.ToTimedelta().total_seconds(),
            max=lateness.max.ToTimedelta().total_seconds(),
        ),
    )


def task_info_to_pb(info: TaskInfo) -> task_pb2.TaskInfo:
    """The proto of ``info``."""
    return task_pb2.TaskInfo(
        definition=definition_to_pb(info.definition),
        enabled=info.enabled,
        workers=info.workers,
        running=info.running,
    )


def task_info_from_pb(message: task_pb2.TaskInfo, field: str) -> TaskInfo:
    """The ``TaskInfo`` of its proto; ``WireError`` names ``field.definition``'s invalid member."""
    return TaskInfo(
        definition=definition_from_pb(message.definition, f"{field}.definition"),
        enabled=message.enabled,
        workers=message.workers,
        running=message.running,
    )


_WORKER_KIND_TO_PB = {
    WorkerKind.io: dispatcher_pb2.WORKER_KIND_IO,
    WorkerKind.cpu: dispatcher_pb2.WORKER_KIND_CPU,
}
_WORKER_KIND_FROM_PB = {value: key for key, value in _WORKER_KIND_TO_PB.items()}


def worker_kind_to_pb(kind: WorkerKind) -> dispatcher_pb2.WorkerKind.ValueType:
    """The proto enum value of ``kind``."""
    return _WORKER_KIND_TO_PB[kind]


def worker_kind_from_pb(kind: dispatcher_pb2.WorkerKind.ValueType, field: str) -> WorkerKind:
    """The ``WorkerKind`` of a proto enum value; ``WireError`` names ``field`` when it is
    neither IO nor CPU."""
    try:
        return _WORKER_KIND_FROM_PB[kind]
    except KeyError:
        raise WireError(field, "must be WORKER_KIND_IO or WORKER_KIND_CPU") from None


def _optional_time(message: Any, name: str) -> datetime | None:
    return datetime_from(getattr(message, name), name) if message.HasField(name) else None


def dead_letter_to_pb(letter: DeadLetter) -> dispatcher_pb2.DeadLetter:
    """The proto of ``letter``."""
    return dispatcher_pb2.DeadLetter(
        id=letter.id,
        run_id=letter.run_id,
        task=letter.task,
        state=state_to_pb(letter.state),
        version=letter.version,
        reason=letter.reason,
        time=timestamp(letter.time),
        size_bytes=letter.size_bytes,
    )


def dead_letter_from_pb(message: dispatcher_pb2.DeadLetter) -> DeadLetter:
    """The ``DeadLetter`` of its proto; ``WireError`` names ``state`` or ``time`` when invalid."""
    return DeadLetter(
        id=message.id,
        run_id=message.run_id,
        task=message.task,
        state=state_from_pb(message.state),
        version=message.version,
        reason=message.reason,
        time=datetime_from(message.time, "time"),
        size_bytes=message.size_bytes,
    )


def queue_status_to_pb(status: QueueStatus) -> dispatcher_pb2.GetQueueStatusResponse:
    """The ``GetQueueStatus`` response carrying ``status``."""
    return dispatcher_pb2.GetQueueStatusResponse(
        depths=[
            dispatcher_pb2.QueueDepth(priority=priority_to_pb(priority), runs=count)
            for priority, count in status.depths.items()
        ],
        workers=[
            dispatcher_pb2.WorkerStatus(
                worker_id=worker.worker_id,
                kind=worker_kind_to_pb(worker.kind),
                tasks=worker.tasks,
                concurrency=worker.concurrency,
                running=worker.running,
                last_seen=timestamp(worker.last_seen),
            )
            for worker in status.workers
        ],
        dead_letters=status.dead_letters,
        oldest_dead_letter=timestamp(status.oldest_dead_letter),
        outbox_pending=status.outbox_pending,
        degraded_loops=[
            dispatcher_pb2.DegradedLoop(
                name=loop.name, error=loop.error, since=timestamp(loop.since)
            )
            for loop in status.degraded_loops
        ],
    )


def queue_status_from_pb(message: dispatcher_pb2.GetQueueStatusResponse) -> QueueStatus:
    """The ``QueueStatus`` of a ``GetQueueStatus`` response (depths of an unspecified priority
    are dropped); ``WireError`` names the field (``priority``, ``workers.kind``, a time) that
    cannot be converted."""
    return QueueStatus(
        depths={
            priority: depth.runs
            for depth in message.depths
            if (priority := priority_from_pb(depth.priority)) is not None
        },
        workers=tuple(
            WorkerStatus(
                worker_id=worker.worker_id,
                kind=worker_kind_from_pb(worker.kind, "workers.kind"),
                tasks=tuple(worker.tasks),
                concurrency=worker.concurrency,
                running=worker.running,
                last_seen=_optional_time(worker, "last_seen"),
            )
            for worker in message.workers
        ),
        dead_letters=message.dead_letters,
        oldest_dead_letter=_optional_time(message, "oldest_dead_letter"),
        outbox_pending=message.outbox_pending,
        degraded_loops=tuple(
            DegradedLoop(loop.name, loop.error, datetime_from(loop.since, "since"))
            for loop in message.degraded_loops
        ),
    )
