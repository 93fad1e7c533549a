"""What a run becomes after each kind of ending: pure functions of the run and its task.

Retries keep the run's id: a retried run goes back to ``queued`` with ``attempt + 1``,
the failed attempt's error kept on it and a due time from the retry policy. The
``queued`` state is reachable again only through these functions.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from fluid.scheduler.definition import TaskDefinition
from fluid.scheduler.models import RetryPolicy, RunError, RunReport, TaskState
from fluid.scheduler.run import Run

from .records import Lease

# A worker that vanished is not the task's fault: without a retry policy an interrupted
# run is still delivered again, up to this many times.
INTERRUPTION_RETRY = RetryPolicy(max_attempts=3, wait=1.0, backoff=2.0, max_wait=30.0)


def _retry(
    run: Run, policy: RetryPolicy | None, error: RunError | None, now: datetime
) -> Run | None:
    retry = run.attempt + 1
    if policy is None or not policy.allows(retry, error.type if error else None):
        return None
    return replace(
        run,
        state=TaskState.queued,
        attempt=retry,
        execute_after=now + timedelta(seconds=policy.delay(retry)),
        start=None,
        end=None,
        error=error,
        worker_id="",
    )


def finished(run: Run, task: TaskDefinition | None, report: RunReport, now: datetime) -> Run:
    """The run after its worker reported ``report``: done, or queued again for a retry."""
    # The output of the attempt that ended is what explains it, retried or not.
    run = replace(run, output_tail=report.output_tail)
    if report.state is TaskState.failure:
        retried = _retry(run, task.retry if task else None, report.error, now)
        if retried is not None:
            return retried
    return replace(
        run,
        state=report.state,
        end=now,
        result=report.result if report.state is TaskState.success else None,
        # A success after retries clears the failed attempt's error; other endings keep it.
        error=None if report.state is TaskState.success else (report.error or run.error),
        reason=report.reason,
    )


def interrupted(
    run: Run,
    task: TaskDefinition | None,
    abort_reason: str | None,
    now: datetime,
    last_renewal: datetime | None = None,
) -> Run:
    """The run after its lease expired without a report.

    ``last_renewal`` is when its worker last renewed the lease (``now`` if unknown). A
    worker still renewing once the timeout had passed failed to stop the run: a timeout.
    One that stopped renewing before vanished: an interruption, even when the lease
    expires after the timeout (the timeout can be shorter than the lease).
    """
    if abort_reason is not None:
        return replace(run, state=TaskState.aborted, end=now, reason=abort_reason)
    timeout = task.timeout_seconds if task else None
    alive = now if last_renewal is None else last_renewal
    if (
        timeout is not None
        and run.start is not None
        and alive - run.start >= timedelta(seconds=timeout)
    ):
        error = RunError.timed_out(run.task, timeout, "its worker did not stop it")
        return finished(run, task, RunReport(TaskState.failure, error=error), now)
    reason = f"lease expired: worker {run.worker_id} stopped renewing it"
    policy = (task.retry if task else None) or INTERRUPTION_RETRY
    retried = _retry(replace(run, reason=reason), policy, None, now)
    if retried is not None:
        return retried
    return replace(run, state=TaskState.interrupted, end=now, reason=reason)


def blocked(run: Run, task: TaskDefinition, enabled: bool, now: datetime) -> Run:
    """The run when it is due but its task is disabled or at max_concurrency."""
    if not enabled:
        return replace(
            run, state=TaskState.aborted, end=now, reason=f"task {task.name} is disabled"
        )
    reason = f"task {task.name} is at max_concurrency={task.max_concurrency}"
    policy = task.rate_limit_retry
    retry = run.rate_limit_attempt + 1
    if policy is not None and policy.allows(retry):
        return replace(
            run,
            rate_limit_attempt=retry,
            execute_after=now + timedelta(seconds=policy.delay(retry)),
            reason=reason,
        )
    return replace(run, state=TaskState.rate_limited, start=now, end=now, reason=reason)


def released(run: Run, abort_reason: str | None, now: datetime) -> Run:
    """The run a worker handed back unstarted (graceful shutdown): queued at once.

    Unless an abort was requested before its worker heard of it: queueing it again
    would run it despite the abort, so it ends ``aborted``.
    """
    if abort_reason is not None:
        return replace(run, state=TaskState.aborted, end=now, reason=abort_reason)
    return replace(run, state=TaskState.queued, start=None, worker_id="", execute_after=None)


def rejected(run: Run, error: RunError, now: datetime) -> Run:
    """The run when it cannot be delivered as it is (its lease message cannot be built):
    failed for good, since every retry would meet the same content."""
    return replace(run, state=TaskState.failure, end=now, error=error, result=None)


def leased(run: Run, worker_id: str, now: datetime) -> Run:
    """The run a worker leased: running from ``now``. (The Redis lease script sets the
    same fields, atomically with the concurrency count; a contract test holds them equal.)"""
    return replace(run, state=TaskState.running, start=now, end=None, worker_id=worker_id)


# -- transitions of a run as read with its lease: None means "leave it as it is" --------


def holds(lease: Lease | None, worker_id: str, attempt: int | None = None) -> bool:
    """Whether ``worker_id`` holds the run's lease (on ``attempt``, when given)."""
    return (
        lease is not None
        and lease.worker_id == worker_id
        and (attempt is None or lease.attempt == attempt)
    )


def reported(
    run: Run,
    lease: Lease | None,
    worker_id: str,
    attempt: int,
    task: TaskDefinition | None,
    report: RunReport,
    now: datetime,
) -> Run | None:
    """The run after its worker's report, if that worker still holds this attempt."""
    if not holds(lease, worker_id, attempt):
        return None
    assert lease is not None
    if lease.abort_reason is not None and report.state is TaskState.failure:
        # Cancelled by an external abort: the cancellation is not a failure.
        report = RunReport(TaskState.aborted, reason=lease.abort_reason)
    return finished(run, task, report, now)


def aborted_while_queued(run: Run, reason: str, now: datetime) -> Run | None:
    """An external abort of a run that has not started: it ends at once."""
    if run.state is not TaskState.queued:
        return None
    return replace(run, state=TaskState.aborted, end=now, reason=reason)


def expired(
    run: Run,
    lease: Lease | None,
    worker_id: str,
    task: TaskDefinition | None,
    now: datetime,
    lease_ttl: timedelta,
) -> Run | None:
    """Interrupt the run if ``worker_id`` still holds a lease that ran out (not a renewed
    one). A lease lasts lease_ttl from its last renewal (capped at the run's timeout plus
    lease_ttl), so its deadline says whether the worker outlived the timeout."""
    if lease is None or lease.deadline > now or lease.worker_id != worker_id:
        return None
    last_renewal = lease.deadline - lease_ttl
    return interrupted(run, task, lease.abort_reason, now, last_renewal)
