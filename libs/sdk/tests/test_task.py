"""The ``@task`` decorator, params models and the ``TaskRun`` context a run receives."""

import asyncio
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from fluid.scheduler import (
    AnyParams,
    Client,
    RetryPolicy,
    Run,
    Task,
    TaskAbortedError,
    TaskContext,
    TaskPriority,
    TaskRun,
    TaskState,
    every,
    task,
)
from fluid.scheduler.task import params_model_of, tasks_in_module
from fluid.scheduler.v1 import dispatcher_pb2, run_pb2


class Greeting(BaseModel):
    name: str
    times: int = 1


class Credentials(BaseModel):
    user: str
    token: SecretStr


class Database:
    """Stands in for a dependency type in ``TaskRun[P, Deps]``."""


@task
async def greet(ctx: TaskRun[Greeting]) -> str:
    """Say hello.

    As many times as asked.
    """
    return " ".join([f"hello {ctx.params.name}"] * ctx.params.times)


@task
async def loose(ctx: TaskRun) -> Any:
    return ctx.params.get("value")


@task
async def untyped(ctx):  # type: ignore[no-untyped-def]
    return None


@task
async def with_deps(ctx: TaskRun[Greeting, Database]) -> None:
    return None


@task
async def login(ctx: TaskRun[Credentials]) -> str:
    return ctx.params.token.get_secret_value()


def test_bare_decorator_defaults() -> None:
    assert isinstance(greet, Task)
    assert greet.name == "greet"
    assert greet.module == __name__
    assert greet.short_description == "Say hello."
    assert greet.description == "Say hello.\n\nAs many times as asked."
    assert greet.schedule is None
    assert greet.randomize is None
    assert greet.max_concurrency == 0
    assert greet.priority is TaskPriority.medium
    assert greet.cpu_bound is False
    assert greet.k8s_config is None
    assert greet.timeout_seconds == 60
    assert greet.tags == frozenset()
    assert isinstance(greet.tags, frozenset)
    assert greet.retry is None
    assert greet.rate_limit_retry is None
    assert greet.env == {}
    assert str(greet) == "greet"


def test_no_docstring_gives_empty_descriptions() -> None:
    assert loose.short_description == ""
    assert loose.description == ""


def test_decorator_with_keywords() -> None:
    schedule = every(timedelta(minutes=1))
    retry = RetryPolicy(max_attempts=3)

    def jitter() -> float:
        return 0.5

    @task(
        name="renamed",
        schedule=schedule,
        short_description="short",
        description="long",
        randomize=jitter,
        max_concurrency=2,
        priority=TaskPriority.high,
        cpu_bound=True,
        k8s_config={"deployment": "workers"},
        timeout_seconds=5,
        tags=["a", "b", "a"],
        retry=retry,
        rate_limit_retry=RetryPolicy(wait=2.0),
        env={"MODE": "batch"},
    )
    async def original(ctx: TaskRun) -> None:
        """Ignored: short_description and description are given."""

    assert original.name == "renamed"
    assert original.schedule == schedule
    assert original.short_description == "short"
    assert original.description == "long"
    assert original.randomize is jitter
    assert original.max_concurrency == 2
    assert original.priority is TaskPriority.high
    assert original.cpu_bound is True
    assert original.k8s_config == {"deployment": "workers"}
    assert original.timeout_seconds == 5
    assert original.tags == frozenset({"a", "b"})
    assert original.retry == retry
    assert original.rate_limit_retry == RetryPolicy(wait=2.0)
    assert original.env == {"MODE": "batch"}


async def test_the_executor_is_the_decorated_function() -> None:
    ctx = make_ctx(greet, Greeting(name="ann", times=2))
    assert await greet.executor(ctx) == "hello ann hello ann"


def test_function_with_keywords_is_a_type_error() -> None:
    async def function(ctx: TaskRun) -> None:
        return None

    with pytest.raises(TypeError):
        task(function, name="x")  # type: ignore[call-overload]


def test_task_with_empty_parentheses_decorates() -> None:
    # The seed's db plugin docs write @task(); the seed itself refused it.
    @task()
    async def plain(ctx: TaskRun) -> None:
        return None

    assert plain.name == "plain"


def test_a_sync_function_is_a_type_error() -> None:
    def blocking(ctx: TaskRun) -> None:
        return None

    with pytest.raises(TypeError, match="async"):
        task(blocking)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async"):
        task(name="blocking")(blocking)  # type: ignore[arg-type]


def test_invalid_limits_raise_value_error() -> None:
    async def function(ctx: TaskRun) -> None:
        return None

    with pytest.raises(ValueError, match="timeout_seconds"):
        task(timeout_seconds=0)(function)
    with pytest.raises(ValueError, match="max_concurrency"):
        task(max_concurrency=-1)(function)


def test_params_model_from_the_task_run_annotation() -> None:
    assert greet.params_model is Greeting
    assert with_deps.params_model is Greeting
    assert login.params_model is Credentials


def test_any_params_when_the_model_is_not_declared() -> None:
    assert loose.params_model is AnyParams
    assert untyped.params_model is AnyParams


def test_params_model_of_only_reads_the_first_parameter() -> None:
    async def second(first: int, ctx: TaskRun[Greeting]) -> None:
        return None

    assert params_model_of(second) is AnyParams


def test_validate_params_returns_the_model() -> None:
    params = greet.validate_params({"name": "ann"})
    assert params == Greeting(name="ann", times=1)


def test_invalid_params_name_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        greet.validate_params({"name": "ann", "times": "many"})
    assert [error["loc"] for error in info.value.errors()] == [("times",)]
    with pytest.raises(ValidationError) as info:
        greet.validate_params({})
    assert [error["loc"] for error in info.value.errors()] == [("name",)]


def test_params_schema_is_the_model_json_schema() -> None:
    schema = greet.params_schema()
    assert schema["required"] == ["name"]
    assert set(schema["properties"]) == {"name", "times"}


def test_any_params_keeps_every_keyword() -> None:
    params = loose.validate_params({"city": "Rome", "count": 3})
    assert isinstance(params, AnyParams)
    assert params["city"] == "Rome"
    assert params.city == "Rome"  # type: ignore[attr-defined]
    assert params.get("count") == 3
    assert params.get("missing", "default") == "default"
    assert params.model_dump() == {"city": "Rome", "count": 3}
    with pytest.raises(KeyError):
        params["missing"]


def test_secret_param_validates_and_keeps_its_value() -> None:
    params = login.validate_params({"user": "ann", "token": "s3cret"})
    assert isinstance(params, Credentials)
    assert params.token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(params)


def test_secret_param_is_masked_by_a_json_dump() -> None:
    # Pydantic's behaviour, the reason Client.queue_run sends the caller's values
    # instead of the validated model's dump (see the next test).
    params = login.validate_params({"user": "ann", "token": "s3cret"})
    assert params.model_dump(mode="json") == {"user": "ann", "token": "**********"}


async def test_secret_param_survives_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    dispatcher = RecordingDispatcher()
    monkeypatch.setattr(Client, "_dispatcher", property(lambda _client: dispatcher))
    await Client("unused:1").queue_run(login, {"user": "ann", "token": "s3cret"})
    (request,) = dispatcher.requests
    assert request.params["token"] == "s3cret"


class RecordingDispatcher:
    """Answers QueueRun like a dispatcher would, keeping each request."""

    def __init__(self) -> None:
        self.requests: list[dispatcher_pb2.QueueRunRequest] = []

    async def QueueRun(  # the generated stub's method name
        self, request: dispatcher_pb2.QueueRunRequest
    ) -> dispatcher_pb2.QueueRunResponse:
        self.requests.append(request)
        run = run_pb2.Run(id="child", task=request.task, state=run_pb2.TASK_STATE_QUEUED)
        return dispatcher_pb2.QueueRunResponse(run=run)


def test_tasks_in_module() -> None:
    module = types.ModuleType("user_tasks")
    module.greet = greet  # type: ignore[attr-defined]
    module.loose = loose  # type: ignore[attr-defined]
    module.helper = len  # type: ignore[attr-defined]
    assert tasks_in_module(module) == [greet, loose]


@dataclass
class QueueCall:
    task: str | Task
    params: Mapping[str, Any]
    priority: TaskPriority | None
    from_run_id: str


@dataclass
class FakeQueuer:
    """Records ``queue_run`` calls and answers with a queued child run."""

    calls: list[QueueCall] = field(default_factory=list)
    deps: Any = None

    async def queue_run(
        self,
        task: str | Task,
        params: Mapping[str, Any],
        *,
        priority: TaskPriority | None = None,
        from_run_id: str = "",
    ) -> Run:
        self.calls.append(QueueCall(task, dict(params), priority, from_run_id))
        return Run(
            id=f"child-{len(self.calls)}",
            task=str(task),
            state=TaskState.queued,
            params=dict(params),
            from_run_id=from_run_id,
        )

    def queue(
        self, task: str | Task, priority: TaskPriority | None = None, **params: Any
    ) -> asyncio.Task[Run]:
        return asyncio.ensure_future(self.queue_run(task, params, priority=priority))


def make_ctx(
    for_task: Task,
    params: BaseModel,
    queuer: FakeQueuer | None = None,
    **run_fields: Any,
) -> TaskRun[Any, Any]:
    run = Run(
        id=run_fields.pop("id", "run-1"),
        task=for_task.name,
        state=TaskState.running,
        start=datetime(2024, 1, 1, tzinfo=UTC),
        **run_fields,
    )
    return TaskRun(run=run, task=for_task, params=params, task_manager=queuer or FakeQueuer())


def test_ctx_exposes_the_run() -> None:
    ctx = make_ctx(
        greet,
        Greeting(name="ann"),
        id="run-7",
        attempt=2,
        priority=TaskPriority.low,
        root_run_id="run-1",
    )
    assert ctx.id == "run-7"
    assert ctx.name == "greet"
    assert ctx.attempt == 2
    assert ctx.priority is TaskPriority.low
    assert ctx.root_run_id == "run-1"
    assert ctx.task is greet
    assert ctx.params == Greeting(name="ann")
    assert repr(ctx) == "TaskRun(task='greet', id='run-7')"


def test_a_first_run_is_its_own_root() -> None:
    ctx = make_ctx(greet, Greeting(name="ann"), id="run-1")
    assert ctx.root_run_id == "run-1"


def test_ctx_logger_carries_the_run() -> None:
    ctx = make_ctx(greet, Greeting(name="ann"), id="run-3")
    assert ctx.logger.logger.name == "fluid.task.greet"
    assert ctx.logger.extra == {"run_id": "run-3", "task": "greet"}


def test_abort_raises_with_the_reason() -> None:
    ctx = make_ctx(greet, Greeting(name="ann"))
    with pytest.raises(TaskAbortedError) as info:
        ctx.abort("nothing to do")
    assert info.value.reason == "nothing to do"
    assert str(info.value) == "nothing to do"


async def test_ctx_queue_records_this_run_as_the_parent() -> None:
    queuer = FakeQueuer()
    ctx = make_ctx(greet, Greeting(name="ann"), queuer, id="parent")
    child = await ctx.queue("loose", value=1, other="x")
    assert queuer.calls == [QueueCall("loose", {"value": 1, "other": "x"}, None, "parent")]
    assert child.from_run_id == "parent"
    assert child.state is TaskState.queued


async def test_ctx_queue_passes_a_task_and_priority() -> None:
    queuer = FakeQueuer()
    ctx = make_ctx(greet, Greeting(name="ann"), queuer, id="parent")
    await ctx.queue(greet, priority=TaskPriority.high, name="bob")
    assert queuer.calls == [QueueCall(greet, {"name": "bob"}, TaskPriority.high, "parent")]


async def test_a_queue_not_awaited_still_queues_and_the_run_waits_for_it() -> None:
    queuer = FakeQueuer(deps={"db": "conn"})
    ctx = make_ctx(greet, Greeting(name="ann"), queuer, id="parent")
    ctx.queue("loose", value=2)  # the seed's spelling: no await
    assert await ctx.children_queued() == []
    assert queuer.calls == [QueueCall("loose", {"value": 2}, None, "parent")]
    assert ctx.task_manager is queuer
    assert ctx.deps == {"db": "conn"}


def test_task_context_is_the_seed_name_of_task_run() -> None:
    assert TaskContext is TaskRun
