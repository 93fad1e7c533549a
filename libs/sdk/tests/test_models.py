"""Run states, their transitions, priorities, retry policies and run errors."""

import pytest

from fluid.scheduler import InvalidTransition, RetryPolicy, RunError, TaskPriority, TaskState

LIVE = (TaskState.init, TaskState.queued, TaskState.running)
TERMINAL = (
    TaskState.success,
    TaskState.failure,
    TaskState.aborted,
    TaskState.rate_limited,
    TaskState.interrupted,
)


def test_the_states_and_priorities_of_the_seed() -> None:
    assert [state.value for state in TaskState] == [
        "init",
        "queued",
        "running",
        "success",
        "failure",
        "aborted",
        "rate_limited",
        "interrupted",
    ]
    assert [priority.value for priority in TaskPriority] == ["high", "medium", "low"]


@pytest.mark.parametrize("state", LIVE)
def test_live_states_are_not_done(state: TaskState) -> None:
    assert not state.is_done
    assert not state.is_failure


@pytest.mark.parametrize("state", TERMINAL)
def test_terminal_states_are_done(state: TaskState) -> None:
    assert state.is_done


def test_only_failure_is_a_failure() -> None:
    assert [state for state in TaskState if state.is_failure] == [TaskState.failure]


@pytest.mark.parametrize("state", list(TaskState))
def test_same_state_is_a_no_op(state: TaskState) -> None:
    assert state.path_to(state) == []


def test_init_to_queued() -> None:
    assert TaskState.init.path_to(TaskState.queued) == [TaskState.queued]


def test_queued_to_running() -> None:
    assert TaskState.queued.path_to(TaskState.running) == [TaskState.running]


def test_queued_to_success_passes_through_running() -> None:
    assert TaskState.queued.path_to(TaskState.success) == [TaskState.running, TaskState.success]


def test_init_to_failure_passes_through_queued_and_running() -> None:
    assert TaskState.init.path_to(TaskState.failure) == [
        TaskState.queued,
        TaskState.running,
        TaskState.failure,
    ]


@pytest.mark.parametrize("target", TERMINAL)
def test_running_ends_in_any_terminal_state(target: TaskState) -> None:
    assert TaskState.running.path_to(target) == [target]


def test_success_to_running_is_invalid() -> None:
    with pytest.raises(InvalidTransition) as info:
        TaskState.success.path_to(TaskState.running)
    assert info.value.current is TaskState.success
    assert info.value.target is TaskState.running
    assert "success" in str(info.value)
    assert "running" in str(info.value)


@pytest.mark.parametrize("current", TERMINAL)
@pytest.mark.parametrize("target", list(TaskState))
def test_nothing_leaves_a_terminal_state(current: TaskState, target: TaskState) -> None:
    if target is current:
        return  # the no-op, covered above
    with pytest.raises(InvalidTransition):
        current.path_to(target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (TaskState.queued, TaskState.init),
        (TaskState.running, TaskState.init),
        (TaskState.running, TaskState.queued),
    ],
)
def test_a_run_never_goes_back(current: TaskState, target: TaskState) -> None:
    with pytest.raises(InvalidTransition):
        current.path_to(target)


def test_invalid_transition_is_a_value_error() -> None:
    assert issubclass(InvalidTransition, ValueError)


def test_a_delay_past_any_float_is_max_wait() -> None:
    # The 1025th doubling of a 1 s wait overflows a float; the cap still holds.
    assert RetryPolicy(wait=1, backoff=2, max_wait=60).delay(1025) == 60
    assert RetryPolicy(max_attempts=1000, wait=1, backoff=100, max_wait=60).delay(1000) == 60


def test_retry_policy_defaults() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts is None
    assert policy.wait == 1.0
    assert policy.backoff == 1.0
    assert policy.max_wait == 60.0
    assert policy.exceptions == ()


@pytest.mark.parametrize(
    ("retry", "expected"), [(1, 2.0), (2, 6.0), (3, 18.0), (4, 30.0), (9, 30.0)]
)
def test_delay_is_exponential_up_to_max_wait(retry: int, expected: float) -> None:
    policy = RetryPolicy(wait=2.0, backoff=3.0, max_wait=30.0)
    assert policy.delay(retry) == pytest.approx(expected)


def test_delay_without_backoff_is_constant() -> None:
    policy = RetryPolicy(wait=0.5)
    assert [policy.delay(retry) for retry in (1, 2, 10)] == [0.5, 0.5, 0.5]


def test_unlimited_retries_when_max_attempts_is_none() -> None:
    policy = RetryPolicy()
    assert all(policy.allows(retry) for retry in (1, 2, 100, 10_000))


def test_max_attempts_counts_retries_not_the_first_execution() -> None:
    policy = RetryPolicy(max_attempts=2)
    assert policy.allows(1)
    assert policy.allows(2)
    assert not policy.allows(3)


def test_max_attempts_zero_never_retries() -> None:
    assert not RetryPolicy(max_attempts=0).allows(1)


def test_exceptions_filter_by_type() -> None:
    policy = RetryPolicy(exceptions=(ConnectionError, TimeoutError))
    assert policy.exception_names == ("ConnectionError", "TimeoutError")
    assert policy.allows(1, "ConnectionError")
    assert policy.allows(1, "TimeoutError")
    assert not policy.allows(1, "KeyError")


def test_exceptions_filter_by_name() -> None:
    policy = RetryPolicy(exceptions=("HTTPError",))
    assert policy.allows(1, "HTTPError")
    assert not policy.allows(1, "ValueError")


def test_no_exceptions_retries_every_error() -> None:
    policy = RetryPolicy(max_attempts=1)
    assert policy.allows(1, "ValueError")
    assert policy.allows(1, "AnythingElse")


def test_exception_filter_does_not_lift_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=1, exceptions=(ValueError,))
    assert not policy.allows(2, "ValueError")


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": -1},
        {"wait": -0.1},
        {"max_wait": -1.0},
        {"backoff": 0.5},
        {"backoff": 0.0},
    ],
)
def test_invalid_retry_policy_raises_value_error(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**options)  # type: ignore[arg-type]


def test_run_error_from_exception() -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        error = RunError.from_exception(exc)
    assert error.type == "KeyError"
    assert error.message == "'missing'"
    assert "Traceback" in error.traceback
    assert "KeyError: 'missing'" in error.traceback
