"""Runs and task definitions survive the trip through the fluid.scheduler.v1 messages."""

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel

from fluid.scheduler import (
    RetryPolicy,
    Run,
    RunError,
    TaskDefinition,
    TaskPriority,
    TaskRun,
    TaskState,
    crontab,
    every,
    task,
)
from fluid.scheduler.models import RunReport
from fluid.scheduler.status import ScheduleInfo, SchedulerStatus, SlotLateness
from fluid.scheduler.v1 import dispatcher_pb2, run_pb2, scheduler_pb2, task_pb2
from fluid.scheduler.wire import (
    WireError,
    definition_from_pb,
    definition_to_pb,
    priority_from_pb,
    report_from_pb,
    report_to_pb,
    run_from_pb,
    run_to_pb,
    scheduler_status_from_pb,
    scheduler_status_to_pb,
    state_from_pb,
)

QUEUED = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def round_trip(run: Run) -> Run:
    # Serialise to bytes too: what crosses the network is the encoded message.
    encoded = run_to_pb(run).SerializeToString()
    return run_from_pb(run_pb2.Run.FromString(encoded))


def full_run(**overrides: Any) -> Run:
    fields: dict[str, Any] = {
        "id": "8f14e45fceea167a5a36dedd4bea2543",
        "task": "ship",
        "priority": TaskPriority.high,
        "state": TaskState.failure,
        "params": {
            "order": {"id": 12, "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]},
            "ratio": 0.25,
            "express": True,
            "note": None,
            "labels": ["x", "y"],
        },
        "queued": QUEUED,
        "start": QUEUED + timedelta(seconds=1),
        "end": QUEUED + timedelta(seconds=3, microseconds=7),
        "execute_after": QUEUED + timedelta(minutes=5),
        "attempt": 2,
        "rate_limit_attempt": 1,
        "from_run_id": "parent",
        "root_run_id": "root",
        "result": {"shipped": 3},
        "error": RunError(type="KeyError", message="'sku'", traceback="Traceback ..."),
        "reason": "why",
        "tags": frozenset({"orders", "io"}),
        "trace_context": {"traceparent": "00-abc-def-01"},
        "worker_id": "worker-1",
        "version": 4,
        "output_tail": ("computing", "Traceback (most recent call last):"),
    }
    fields.update(overrides)
    return Run(**fields)


def test_run_round_trip_preserves_every_field() -> None:
    run = full_run()
    assert round_trip(run) == run


@pytest.mark.parametrize(
    "report",
    [
        RunReport(TaskState.success, result={"n": 1}, output_tail=("one", "two")),
        RunReport(TaskState.failure, error=RunError("ValueError", "bad", "Traceback ...")),
        RunReport(TaskState.aborted, reason="nothing to do", output_tail=("skipping",)),
    ],
)
def test_an_report_round_trips_with_its_output_tail(report: RunReport) -> None:
    encoded = report_to_pb("run-1", 2, report).SerializeToString()
    message = dispatcher_pb2.RunReport.FromString(encoded)
    assert (message.run_id, message.attempt) == ("run-1", 2)
    assert report_from_pb(message, "report") == report


def test_a_minimal_run_round_trips() -> None:
    run = Run(id="r", task="t")
    decoded = round_trip(run)
    assert decoded == run
    assert decoded.queued is None
    assert decoded.error is None
    assert decoded.result is None


def test_integers_stay_integers() -> None:
    decoded = round_trip(full_run(params={"count": 3, "nested": [1, {"n": -4}]}, result=7))
    assert decoded.params == {"count": 3, "nested": [1, {"n": -4}]}
    assert isinstance(decoded.params["count"], int)
    assert isinstance(decoded.params["nested"][1]["n"], int)
    assert isinstance(decoded.result, int)


def test_fractional_numbers_stay_floats() -> None:
    assert round_trip(full_run(params={"ratio": 0.5})).params == {"ratio": 0.5}


@pytest.mark.parametrize(
    "result",
    [None, 0, False, True, "", "done", [], [1, "two", None], {}, {"a": [1, {"b": None}]}, 2.5],
)
def test_result_is_any_json_value(result: Any) -> None:
    decoded = round_trip(full_run(result=result))
    assert decoded.result == result
    assert type(decoded.result) is type(result)


@pytest.mark.parametrize("state", list(TaskState))
def test_every_state_round_trips(state: TaskState) -> None:
    assert round_trip(full_run(state=state)).state is state


@pytest.mark.parametrize("priority", list(TaskPriority))
def test_every_priority_round_trips(priority: TaskPriority) -> None:
    assert round_trip(full_run(priority=priority)).priority is priority


def test_timestamps_come_back_aware_in_utc() -> None:
    rome_summer = timezone(timedelta(hours=2))
    queued = datetime(2024, 5, 1, 14, 30, 15, 123456, tzinfo=rome_summer)
    decoded = round_trip(full_run(queued=queued))
    assert decoded.queued == queued
    assert decoded.queued is not None
    assert decoded.queued.tzinfo is UTC
    assert decoded.queued == datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    assert decoded.end is not None
    assert decoded.end.tzinfo is UTC


def test_tags_travel_sorted() -> None:
    assert list(run_to_pb(full_run(tags=frozenset({"b", "c", "a"}))).tags) == ["a", "b", "c"]


@pytest.mark.parametrize(
    "params",
    [
        {"when": datetime(2024, 1, 1, tzinfo=UTC)},
        {"blob": b"bytes"},
        {"items": {1, 2}},
        {"ratio": math.nan},
        {"ratio": math.inf},
    ],
)
def test_non_json_params_raise_wire_error_naming_the_field(params: dict[str, Any]) -> None:
    with pytest.raises(WireError) as info:
        run_to_pb(full_run(params=params))
    assert info.value.field == "params"
    assert str(info.value).startswith("params: ")


@pytest.mark.parametrize("result", [object(), math.nan, [-math.inf]])
def test_non_json_result_raises_wire_error_naming_the_field(result: Any) -> None:
    with pytest.raises(WireError) as info:
        run_to_pb(full_run(result=result))
    assert info.value.field == "result"


def test_wire_error_is_a_value_error() -> None:
    assert issubclass(WireError, ValueError)


def test_unknown_enum_values_raise_wire_error() -> None:
    with pytest.raises(WireError) as info:
        state_from_pb(99)
    assert info.value.field == "state"
    with pytest.raises(WireError) as info:
        priority_from_pb(99, "run.priority")
    assert info.value.field == "run.priority"


def test_unspecified_priority_decodes_as_medium() -> None:
    message = run_to_pb(full_run())
    message.priority = run_pb2.TASK_PRIORITY_UNSPECIFIED
    assert run_from_pb(message).priority is TaskPriority.medium


class Order(BaseModel):
    order_id: int
    express: bool = False


@task(
    short_description="Ship an order",
    description="Ship an order.\n\nAll of it.",
    cpu_bound=True,
    timeout_seconds=12.5,
    max_concurrency=3,
    priority=TaskPriority.low,
    retry=RetryPolicy(
        max_attempts=4, wait=0.5, backoff=2.0, max_wait=10.0, exceptions=("IOError",)
    ),
    rate_limit_retry=RetryPolicy(wait=3.0),
    tags=("orders", "io"),
    schedule=every(timedelta(minutes=10), delay=timedelta(seconds=5), jitter=timedelta(seconds=2)),
)
async def ship(ctx: TaskRun[Order]) -> None:
    return None


def definition_round_trip(definition: TaskDefinition) -> TaskDefinition:
    encoded = definition_to_pb(definition).SerializeToString()
    return definition_from_pb(task_pb2.TaskDefinition.FromString(encoded), "task")


def test_definition_of_a_task() -> None:
    definition = TaskDefinition.of(ship)
    assert definition.name == "ship"
    assert definition.module == __name__
    assert definition.params_schema == Order.model_json_schema()
    assert definition.schedule == ship.schedule
    assert definition.retry == ship.retry


def test_definition_round_trip_with_every_schedule() -> None:
    definition = TaskDefinition.of(ship)
    assert definition_round_trip(definition) == definition


@pytest.mark.parametrize(
    "schedule",
    [
        crontab(0, 9, tz="Europe/Rome"),
        crontab(minute="*/15", hour="9-17", day="1,15", month="*/3", day_of_week="1-5"),
        crontab(),
        every(timedelta(seconds=1)),
        every(timedelta(hours=1, microseconds=500)),
        every(timedelta(seconds=10), catch_up=True),
        crontab(0, 9, tz="Europe/Rome", catch_up=True),
    ],
)
def test_definition_round_trip_of_schedules(schedule: crontab | every) -> None:
    definition = TaskDefinition(name="tick", schedule=schedule)
    assert definition_round_trip(definition).schedule == schedule


@pytest.mark.parametrize(
    "policy",
    [
        RetryPolicy(),
        RetryPolicy(max_attempts=0),
        RetryPolicy(max_attempts=2, wait=0.0, backoff=1.5, max_wait=0.25),
        RetryPolicy(exceptions=("ValueError", "HTTPError")),
    ],
)
def test_definition_round_trip_of_retry_policies(policy: RetryPolicy) -> None:
    definition = TaskDefinition(name="t", retry=policy, rate_limit_retry=policy)
    decoded = definition_round_trip(definition)
    assert decoded.retry == policy
    assert decoded.rate_limit_retry == policy


def test_exception_types_travel_as_names() -> None:
    definition = TaskDefinition(name="t", retry=RetryPolicy(exceptions=(KeyError, "HTTPError")))
    decoded = definition_round_trip(definition)
    assert decoded.retry == RetryPolicy(exceptions=("KeyError", "HTTPError"))


def test_a_minimal_definition_round_trips_with_defaults() -> None:
    definition = TaskDefinition(name="t")
    decoded = definition_round_trip(definition)
    assert decoded == definition
    assert decoded.timeout_seconds == 60.0
    assert decoded.priority is TaskPriority.medium
    assert decoded.retry is None
    assert decoded.schedule is None


def test_definition_without_a_name_raises_wire_error() -> None:
    message = definition_to_pb(TaskDefinition(name="t"))
    message.name = ""
    with pytest.raises(WireError) as info:
        definition_from_pb(message, "definition")
    assert info.value.field == "definition.name"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"params_schema": "{not json"}, "task.params_schema"),
        ({"params_schema": "[1, 2]"}, "task.params_schema"),
        ({"params_schema": "[" * 100_000}, "task.params_schema"),
        ({"timeout_seconds": -1.0}, "task.timeout_seconds"),
        ({"max_concurrency": -1}, "task.max_concurrency"),
        ({"max_queued": -1}, "task.max_queued"),
        ({"priority": 42}, "task.priority"),
        ({"retry": task_pb2.RetryPolicy(backoff=0.5)}, "task.retry"),
        (
            {"schedule": task_pb2.Schedule(crontab=task_pb2.CrontabSchedule(minute="61"))},
            "task.schedule",
        ),
        ({"schedule": task_pb2.Schedule(every=task_pb2.EverySchedule())}, "task.schedule"),
    ],
)
def test_invalid_definitions_raise_wire_error_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    message = task_pb2.TaskDefinition(name="t", **change)
    with pytest.raises(WireError) as info:
        definition_from_pb(message, "task")
    assert info.value.field == field


def test_scheduler_status_round_trips() -> None:
    slot = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    status = SchedulerStatus(
        schedules=(
            ScheduleInfo(
                task="report",
                description="crontab 0 9 * * * Europe/Rome, catch up",
                schedule=crontab(0, 9, tz="Europe/Rome", catch_up=True),
                next_fire=slot + timedelta(days=1),
                last_slot=slot,
                last_run_id="run-1",
                missed_slots=3,
            ),
            ScheduleInfo(
                task="tick",
                description="every 0:00:01",
                schedule=every(timedelta(seconds=1)),
                enabled=False,
                last_error="slot 2026-01-01T09:00:00+00:00: params: field required",
            ),
        ),
        leader_id="scheduler-a",
        replica_id="scheduler-a",
        leader_since=slot - timedelta(hours=1),
        lateness=SlotLateness(count=10, p50=0.002, p99=0.011, max=0.015),
    )
    encoded = scheduler_status_to_pb(status).SerializeToString()
    decoded = scheduler_status_from_pb(scheduler_pb2.ListSchedulesResponse.FromString(encoded))
    assert decoded == status


def test_an_empty_scheduler_status_round_trips() -> None:
    status = SchedulerStatus(replica_id="standby")
    assert scheduler_status_from_pb(scheduler_status_to_pb(status)) == status
