"""Background loops: they stop even when one cancellation is swallowed, report their
health once per incident, back off, and treat a failed batch one way wherever they run."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest

from fluid.scheduler.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    ResourceExhaustedError,
    UnavailableError,
)
from fluid.service.loops import (
    Backoff,
    BatchFailure,
    LoopHealth,
    batch_failure,
    cancel_and_wait,
    renewal_interval,
)


def test_a_failing_loop_is_logged_once_per_incident_and_its_recovery_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = LoopHealth()
    caplog.set_level(logging.INFO, logger="fluid.loops")

    for _ in range(5):
        health.failed("forwarder", UnavailableError("history is away"))
    health.failed("housekeeping", KeyError("bug"))
    (forwarder, degraded) = health.degraded()
    health.ok("forwarder")
    health.ok("forwarder")

    assert (forwarder.name, forwarder.error) == ("forwarder", "UnavailableError: history is away")
    assert degraded.name == "housekeeping"
    assert [loop.name for loop in health.degraded()] == ["housekeeping"]
    lines = [(record.levelname, record.getMessage()) for record in caplog.records]
    assert [level for level, _ in lines] == ["WARNING", "ERROR", "INFO"]
    assert "history is away" in lines[0][1] and "recovered" in lines[2][1]
    # A bug keeps its traceback in the log; a peer away does not need one.
    assert caplog.records[1].exc_info is not None and caplog.records[0].exc_info is None


def test_a_failure_of_another_kind_is_logged_again_and_shown_as_the_latest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = LoopHealth()
    caplog.set_level(logging.INFO, logger="fluid.loops")

    health.failed("forwarder", UnavailableError("history is away"))
    since = health.degraded()[0].since
    health.failed("forwarder", UnavailableError("history is still away"))
    health.failed("forwarder", OverflowError("a bug behind the outage"))

    (loop,) = health.degraded()
    assert (loop.error, loop.since) == ("OverflowError: a bug behind the outage", since)
    assert [record.levelname for record in caplog.records] == ["WARNING", "ERROR"]
    assert caplog.records[1].exc_info is not None


def test_backoff_doubles_up_to_its_cap_and_starts_again_after_a_reset() -> None:
    backoff = Backoff(first=0.1, cap=0.5)

    delays = [backoff.delay() for _ in range(5)]
    backoff.reset()

    assert 0.08 <= delays[0] <= 0.1 and 0.16 <= delays[1] <= 0.2
    assert all(0.4 <= delay <= 0.5 for delay in delays[3:])
    assert backoff.delay() <= 0.1


async def test_a_loop_that_swallows_a_cancellation_is_cancelled_again() -> None:
    swallowed = 0

    async def stubborn_loop() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                # What asyncio.timeout() can do to a cancellation on Python 3.11.
                if swallowed:
                    raise
                swallowed += 1

    async def failing() -> None:
        raise RuntimeError("collected, not reported as never retrieved")

    loops = [asyncio.create_task(stubborn_loop()), asyncio.create_task(failing())]
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(loops, retry_every=0.01), timeout=5)
    assert swallowed == 1
    assert all(loop.done() for loop in loops)


def failed_call(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "nope", "")


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (UnavailableError("dispatcher restarting"), BatchFailure.not_now),
        (failed_call(grpc.StatusCode.UNAVAILABLE), BatchFailure.not_now),
        (failed_call(grpc.StatusCode.DEADLINE_EXCEEDED), BatchFailure.not_now),
        (failed_call(grpc.StatusCode.CANCELLED), BatchFailure.not_now),
        (ResourceExhaustedError("too large"), BatchFailure.refused),
        (InvalidArgumentError("malformed"), BatchFailure.refused),
        (failed_call(grpc.StatusCode.RESOURCE_EXHAUSTED), BatchFailure.refused),
        (failed_call(grpc.StatusCode.INVALID_ARGUMENT), BatchFailure.refused),
        (failed_call(grpc.StatusCode.INTERNAL), BatchFailure.unforeseen),
        (FailedPreconditionError("unknown worker"), BatchFailure.unforeseen),
        (RuntimeError("a bug"), BatchFailure.unforeseen),
    ],
)
def test_a_failed_batch_is_told_the_same_as_a_typed_error_or_a_failed_call(
    error: BaseException, failure: BatchFailure
) -> None:
    assert batch_failure(error) is failure


def test_a_lease_is_renewed_three_times_per_ttl() -> None:
    assert renewal_interval(15.0) == 5.0
