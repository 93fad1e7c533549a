"""What a worker does around each attempt it executes, as small hooks.

The worker calls every hook's ``started`` before the executor and, once the attempt
ended, every hook's ``ended`` in order, each receiving the report the previous one
returned. A lost lease or a shutdown ends an attempt without calling ``ended``: the
dispatcher, not this worker, settles those runs.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Protocol

from fluid.scheduler.models import RunReport, sendable_report
from fluid.scheduler.run import Run, utcnow

logger = logging.getLogger("fluid.worker")


class RunEvents(Protocol):
    """Where a worker sends the runs whose state it saw change (a ``TaskManager``)."""

    async def emit(self, run: Run) -> None:
        """Call the handlers of the run's state."""
        ...


class AttemptHook:
    """A per-attempt concern; the defaults do nothing and pass the report on."""

    async def started(self, run: Run) -> None:
        return None

    async def ended(self, run: Run, report: RunReport) -> RunReport:
        return report


class SendableReport(AttemptHook):
    """Fits the report to the limits before it is reported, so the report is small and
    the dispatcher takes it: a result that is not JSON or is too large fails the run
    (saying why), text is cut and NUL made storable (``models.sendable_report``)."""

    async def ended(self, run: Run, report: RunReport) -> RunReport:
        sendable, problem = sendable_report(report)
        if problem:
            logger.warning("run %s fails: %s", run.id, problem)
        return sendable


class LifecycleEvents(AttemptHook):
    """Emits the run's lifecycle events: ``running`` when the attempt starts, its final
    state when it ends (see ``fluid.scheduler.lifecycle``)."""

    def __init__(self, manager: RunEvents) -> None:
        self._manager = manager

    async def started(self, run: Run) -> None:
        await self._manager.emit(run)

    async def ended(self, run: Run, report: RunReport) -> RunReport:
        await self._manager.emit(
            replace(
                run,
                state=report.state,
                result=report.result,
                error=report.error,
                reason=report.reason,
                end=utcnow(),
                output_tail=report.output_tail,
            )
        )
        return report
