"""Conversion between a ``Run`` and a row of the runs table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping

from fluid.scheduler.models import RunError, TaskPriority, TaskState
from fluid.scheduler.run import Run


def row_from_run(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "task": run.task,
        "priority": run.priority.value,
        "state": run.state.value,
        "queued": run.queued,
        "start": run.start,
        "end": run.end,
        "execute_after": run.execute_after,
        "attempt": run.attempt,
        "rate_limit_attempt": run.rate_limit_attempt,
        "from_run_id": run.from_run_id,
        "root_run_id": run.root_run_id,
        "params": run.params,
        "result": run.result,
        "error_type": run.error.type if run.error else None,
        "error_message": run.error.message if run.error else None,
        "error_traceback": run.error.traceback if run.error else None,
        "reason": run.reason,
        "tags": sorted(run.tags),
        "trace_context": run.trace_context,
        "worker_id": run.worker_id,
        "output_tail": list(run.output_tail),
        "version": run.version,
    }


def run_from_row(row: RowMapping) -> Run:
    error = (
        RunError(
            type=row["error_type"],
            message=row["error_message"] or "",
            traceback=row["error_traceback"] or "",
        )
        if row["error_type"] is not None
        else None
    )
    return Run(
        id=row["id"],
        task=row["task"],
        priority=TaskPriority(row["priority"]),
        state=TaskState(row["state"]),
        params=dict(row["params"]),
        queued=row["queued"],
        start=row["start"],
        end=row["end"],
        execute_after=row["execute_after"],
        attempt=row["attempt"],
        rate_limit_attempt=row["rate_limit_attempt"],
        from_run_id=row["from_run_id"],
        root_run_id=row["root_run_id"],
        result=row["result"],
        error=error,
        reason=row["reason"],
        tags=frozenset(row["tags"]),
        trace_context=dict(row["trace_context"]),
        worker_id=row["worker_id"],
        output_tail=tuple(row["output_tail"] or ()),
        version=row["version"],
    )
