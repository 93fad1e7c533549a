"""Delivery of a worker's run reports to the dispatcher, in batches cut by bytes.

No report can hold the others up (the policy is ``fluid.service.loops.BatchFailure``). A
batch the dispatcher refuses (too large for a message, or malformed) is sent again in
halves until the refusal stands alone; a lone refused report is replaced, once, by a
failure report of its run without result or output that says why; if even that is
refused it is dropped, logged, and the run's lease expires so the dispatcher settles it.
Only an unreachable dispatcher makes a batch wait: ``step`` raises and the worker's
supervising loop sends it again after a back-off.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from fluid.scheduler.errors import FluidError
from fluid.scheduler.limits import batches
from fluid.scheduler.models import ReportReply, RunError, RunReport, TaskState, sendable_report
from fluid.scheduler.run import Run

from .loops import BATCH_TRIES, BatchFailure, batch_failure
from .worker_hooks import AttemptHook
from .worker_link import EncodedReport, WorkerLink

logger = logging.getLogger("fluid.worker")


def _report_size(report: EncodedReport) -> int:
    return report.size


def _describe(error: Exception) -> str:
    # A link's errors already name their status code; anything else is named by its type.
    return str(error) if isinstance(error, FluidError) else f"{type(error).__name__}: {error}"


class Reporter(AttemptHook):
    """Queues each attempt's report (an attempt hook) and delivers the queue in order."""

    def __init__(
        self, link: WorkerLink, worker_id: str, *, batch_bytes: int, batch_size: int
    ) -> None:
        self._link = link
        self._worker_id = worker_id
        self._batch_bytes = batch_bytes
        self._batch_size = batch_size
        self._incoming: asyncio.Queue[EncodedReport] = asyncio.Queue()
        # Batches cut and not yet delivered, the next one first.
        self._outgoing: deque[list[EncodedReport]] = deque()
        self._tries = 0
        # Set while nothing waits to be delivered (what a stopping worker waits for).
        self._idle = asyncio.Event()
        self._idle.set()

    async def ended(self, run: Run, report: RunReport) -> RunReport:
        self.add(run.id, run.attempt, report)
        return report

    def add(self, run_id: str, attempt: int, report: RunReport) -> None:
        """Queue a report for delivery."""
        try:
            encoded: EncodedReport | None = self._link.encode_report(run_id, attempt, report)
        except Exception as error:
            encoded = self._replacement(
                run_id, attempt, report, f"it cannot be encoded: {_describe(error)}"
            )
        if encoded is not None:
            self._idle.clear()
            self._incoming.put_nowait(encoded)

    @property
    def pending(self) -> int:
        """Reports not delivered yet."""
        return self._incoming.qsize() + sum(len(batch) for batch in self._outgoing)

    async def flush(self, timeout: float) -> bool:
        """Wait until every queued report is delivered or dropped; False after ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def step(self) -> None:
        """Deliver the next batch, waiting for reports when there are none.

        Raises when the batch should be sent again later (the dispatcher unreachable, or
        an unforeseen failure not yet tried ``BATCH_TRIES`` times).
        """
        if not self._outgoing:
            if self._incoming.empty():
                self._idle.set()
            reports = [await self._incoming.get()]
            while not self._incoming.empty():
                reports.append(self._incoming.get_nowait())
            self._outgoing.extend(
                batches(reports, _report_size, self._batch_bytes, self._batch_size)
            )
        batch = self._outgoing[0]
        try:
            reply = await self._link.report(self._worker_id, batch)
        except Exception as error:
            failure = batch_failure(error)
            if failure is BatchFailure.not_now:
                raise  # the dispatcher is down or restarting: nothing is wrong with the batch
            self._tries += 1
            if failure is BatchFailure.unforeseen and self._tries < BATCH_TRIES:
                raise
            self._outgoing.popleft()
            self._outgoing.extendleft(reversed(self._after_refusal(batch, _describe(error))))
        else:
            self._outgoing.popleft()
            self._log(reply)
        self._tries = 0
        if not self._outgoing and self._incoming.empty():
            self._idle.set()

    def _after_refusal(self, batch: list[EncodedReport], why: str) -> list[list[EncodedReport]]:
        """What to send instead of a refused batch."""
        if len(batch) > 1:
            logger.info("the dispatcher refused %d reports (%s): sending halves", len(batch), why)
            middle = len(batch) // 2
            return [batch[:middle], batch[middle:]]
        report = batch[0]
        if report.replacement:
            logger.error(
                "the dispatcher refused the failure report of run %s too (%s): dropped, "
                "the run's lease expires and the dispatcher settles it",
                report.run_id,
                why,
            )
            return []
        logger.warning(
            "the dispatcher refused the report of run %s (%s): reporting a failure instead",
            report.run_id,
            why,
        )
        replacement = self._replacement(
            report.run_id, report.attempt, report.report, f"the dispatcher refused it: {why}"
        )
        return [] if replacement is None else [[replacement]]

    def _replacement(
        self, run_id: str, attempt: int, report: RunReport, why: str
    ) -> EncodedReport | None:
        """A failure report of the run without result or output, saying why (None when
        even that cannot be encoded)."""
        failure, _ = sendable_report(
            RunReport(
                TaskState.failure,
                error=RunError(
                    "ReportRefusedError",
                    f"the report of this attempt ({report.state}) could not be delivered, "
                    f"its result and output are lost: {why}",
                ),
            )
        )
        try:
            return self._link.encode_report(run_id, attempt, failure, replacement=True)
        except Exception as error:
            logger.error(
                "the failure report of run %s cannot be encoded (%s): dropped, the run's "
                "lease expires and the dispatcher settles it",
                run_id,
                _describe(error),
            )
            return None

    def _log(self, reply: ReportReply) -> None:
        for run_id, reason in reply.rejected:
            logger.warning(
                "the dispatcher rejected the report of run %s, which failed: %s", run_id, reason
            )
        if reply.ignored:
            logger.info(
                "the dispatcher ignored the reports of %d run(s) this worker no longer held: %s",
                len(reply.ignored),
                ", ".join(reply.ignored),
            )
