"""A run's process output: every line to the runner's log, the last lines kept for the run."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from dataclasses import replace

from fluid.scheduler.models import RunReport

logger = logging.getLogger("fluid.cpu_runner.output")

# A kept line is cut here: the tail travels in every report and history row.
MAX_KEPT_LINE = 1000
# A "line" with no newline for this long is logged in pieces rather than buffered forever.
MAX_BUFFERED_LINE = 64 * 1024


class RunOutput:
    """Lines one run's process wrote, logged as they come and tagged with the run id."""

    def __init__(self, run_id: str, task: str, keep: int) -> None:
        self.run_id = run_id
        self.task = task
        self._tail: deque[str] = deque(maxlen=keep)

    @property
    def tail(self) -> tuple[str, ...]:
        return tuple(self._tail)

    def line(self, stream: str, text: str) -> None:
        logger.info(
            "[run %s %s] %s",
            self.run_id,
            stream,
            text,
            extra={"run_id": self.run_id, "task": self.task, "stream": stream},
        )
        if self._tail.maxlen:
            self._tail.append(text[:MAX_KEPT_LINE])

    def lines(self, stream: str, text: str) -> None:
        """Every line of ``text`` (a whole log read at once)."""
        for line in text.splitlines():
            self.line(stream, line)

    async def follow(self, fd: int, stream: str) -> None:
        """Read the pipe ``fd`` (taking ownership of it) until every writer closed it."""
        loop = asyncio.get_running_loop()
        protocol = _LineReader(self, stream, loop.create_future())
        transport, _ = await loop.connect_read_pipe(lambda: protocol, os.fdopen(fd, "rb", 0))
        try:
            await protocol.closed
        finally:
            transport.close()


class _LineReader(asyncio.Protocol):
    """Splits a pipe's bytes into lines for ``RunOutput``."""

    def __init__(self, output: RunOutput, stream: str, closed: asyncio.Future[None]) -> None:
        self.output = output
        self.stream = stream
        self.closed = closed
        self._pending = bytearray()

    def data_received(self, data: bytes) -> None:
        self._pending += data
        while True:
            end = self._pending.find(b"\n")
            if end < 0:
                break
            self._emit(self._pending[:end])
            del self._pending[: end + 1]
        if len(self._pending) >= MAX_BUFFERED_LINE:
            self._emit(self._pending)
            self._pending.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending.clear()
        if not self.closed.done():
            self.closed.set_result(None)

    def _emit(self, raw: bytes | bytearray) -> None:
        self.output.line(self.stream, bytes(raw).decode(errors="replace").rstrip("\r"))


def with_output(report: RunReport, tail: tuple[str, ...]) -> RunReport:
    """The report with the process's last output lines.

    An error the runner made up (timeout, crash) has no traceback: the last lines are the
    best account of what happened, and the error is what history shows today.
    """
    error = report.error
    if error is not None and not error.traceback and tail:
        error = replace(error, traceback="last output lines:\n" + "\n".join(tail))
    return replace(report, error=error, output_tail=tail)
