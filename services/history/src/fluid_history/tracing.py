"""History's part of a run's trace: one span per stored run, inside the trace that queued it."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.trace import Tracer

from fluid.scheduler.run import Run
from fluid.service.telemetry import context_from, tracer


class RecordSpans:
    """An ``on_recorded`` hook of ``RunHistory`` emitting a ``history.record`` span per run.

    The parent comes from the run's stored W3C context rather than from the RecordRuns
    call, because the dispatcher batches runs of many traces into one call: each run's
    trace, not the batch, is what a reader follows.
    """

    def __init__(self, run_tracer: Tracer | None = None) -> None:
        self._tracer = run_tracer or tracer("fluid.history")

    def __call__(self, applied: Sequence[Run], started_ns: int) -> None:
        for run in applied:
            if not run.trace_context:
                continue
            span = self._tracer.start_span(
                "history.record",
                context=context_from(run.trace_context),
                # Opened when the write began, so the trace shows what storing cost.
                start_time=started_ns,
                attributes={
                    "fluid.run_id": run.id,
                    "fluid.task": run.task,
                    "fluid.state": str(run.state),
                },
            )
            span.end()
