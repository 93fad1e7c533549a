"""Executes one attempt of a run in this process and says how it ended.

Shared by the io-worker (on its event loop) and the cpu-runner's subprocess, so both
turn params errors, timeouts, aborts and exceptions into the same reports.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace
from pydantic import ValidationError

from fluid.service.logs import current_run
from fluid.service.telemetry import context_from, tracer

from .models import RunError, RunReport, TaskState
from .run import Run
from .task import RunManager, Task, TaskAbortedError, TaskRun, current_task_run

logger = logging.getLogger("fluid.execution")


def run_span(
    tracer_name: str, name: str, run: Run, **attributes: str | int
) -> AbstractContextManager[trace.Span]:
    """A span of one attempt of ``run``, inside the trace the run was queued in."""
    return tracer(tracer_name).start_as_current_span(
        name,
        context=context_from(run.trace_context),
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "fluid.task": run.task,
            "fluid.run_id": run.id,
            "fluid.attempt": run.attempt,
            **attributes,
        },
    )


def _json_result(value: object) -> object:
    """The value as JSON would carry it; raises TypeError/ValueError when it cannot be."""
    return json.loads(json.dumps(value))


async def execute_run(task: Task, run: Run, task_manager: RunManager) -> RunReport:
    """Run the task function for ``run`` under its timeout; never raises but on cancel.

    ``task_manager`` is ``ctx.task_manager``: it queues the run's children.

    The span joins the trace the run was queued in (stored on the run), so an attempt
    executed minutes later still hangs under the call that queued it.
    """
    with run_span(
        "fluid.worker", f"run {task.name}", run, **{"messaging.operation.type": "process"}
    ) as span:
        # Log lines of the task and of fluid name the run (see fluid.service.logs).
        token = current_run.set(run)
        try:
            report = await _attempt(task, run, task_manager)
        finally:
            current_run.reset(token)
        span.set_attribute("fluid.state", str(report.state))
        if report.state is TaskState.failure:
            span.set_status(trace.StatusCode.ERROR, report.error.message if report.error else "")
        return report


def params_error(exc: ValidationError) -> RunError:
    """The error of params the model refused, without the values: pydantic's message
    quotes each failing input, which may be (or contain) a secret."""
    lines = [f"{exc.error_count()} validation error(s) for {exc.title}"]
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(part) for part in error["loc"]) or "params"
        lines.append(f"{where}: {error['msg']} [type={error['type']}]")
    return RunError(type(exc).__name__, "\n".join(lines))


async def _attempt(task: Task, run: Run, task_manager: RunManager) -> RunReport:
    try:
        params = task.validate_params(run.params)
    except ValidationError as exc:
        return RunReport(TaskState.failure, error=params_error(exc))
    ctx: TaskRun[Any, Any] = TaskRun(run=run, task=task, params=params, task_manager=task_manager)
    token = current_task_run.set(ctx)
    try:
        report = await _call(task, ctx)
    finally:
        current_task_run.reset(token)
    # Children queued without await must be queued before the parent says it ended:
    # whoever sees the parent done may look for them.
    failed = await ctx.children_queued()
    if failed and report.state is TaskState.success:
        error = RunError.from_exception(failed[0])
        message = f"queueing a child run failed: {error.type}: {error.message}"
        return RunReport(TaskState.failure, error=RunError(error.type, message, error.traceback))
    return report


async def _call(task: Task, ctx: TaskRun[Any, Any]) -> RunReport:
    run = ctx.run
    try:
        async with asyncio.timeout(task.timeout_seconds):
            value = await task.executor(ctx)
    except TaskAbortedError as exc:
        logger.info("run %s of %s aborted itself: %s", run.id, task.name, exc.reason)
        return RunReport(TaskState.aborted, reason=exc.reason)
    except TimeoutError as exc:
        error = RunError.timed_out(
            task.name, task.timeout_seconds, traceback=RunError.from_exception(exc).traceback
        )
        return RunReport(TaskState.failure, error=error)
    except Exception as exc:
        logger.warning("run %s of %s failed: %r", run.id, task.name, exc)
        return RunReport(TaskState.failure, error=RunError.from_exception(exc))
    try:
        result = _json_result(value)
    except (TypeError, ValueError) as exc:
        return RunReport(
            TaskState.failure,
            error=RunError("TypeError", f"the return value of {task.name} is not JSON: {exc}"),
        )
    return RunReport(TaskState.success, result=result)
