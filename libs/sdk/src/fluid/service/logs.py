"""Process-wide logging for fluid services and the CLI.

Every record about a run carries its run id, task and trace id: the runtime sets the
run being executed in a context variable (``current_run``, below), and the active span
gives the trace. ``json`` writes one JSON object per line for log pipelines
(production); ``pretty`` writes aligned text for a terminal (``fluid dev``).
"""

from __future__ import annotations

import json
import logging
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal, Protocol

from opentelemetry import trace

LogFormat = Literal["json", "pretty"]
_RUN_FIELDS = ("run_id", "task", "trace_id")


class LoggedRun(Protocol):
    """What logging reads of a run, which ``fluid.scheduler.run.Run`` has: logging is host
    plumbing and imports nothing of the SDK's model (docs/architecture.md, "Layers")."""

    @property
    def id(self) -> str: ...

    @property
    def task(self) -> str: ...


# The run the current task (asyncio task or process) executes: the runtime sets it for an
# attempt (fluid.scheduler.execution), log records read it.
current_run: ContextVar[LoggedRun | None] = ContextVar("current_run", default=None)


class RunContextFilter(logging.Filter):
    """Adds run_id, task and trace_id to records emitted while a run executes."""

    def filter(self, record: logging.LogRecord) -> bool:
        run = current_run.get()
        if run is not None:
            if not getattr(record, "run_id", None):
                record.run_id = run.id
            if not getattr(record, "task", None):
                record.task = run.task
        span = trace.get_current_span().get_span_context()
        if span.is_valid and not getattr(record, "trace_id", None):
            record.trace_id = format(span.trace_id, "032x")
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _RUN_FIELDS:
            value = getattr(record, name, None)
            if value:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class PrettyFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        run_id = getattr(record, "run_id", None)
        return f"{line}  [run {run_id}]" if run_id else line


def configure_logging(level: str = "INFO", log_format: LogFormat = "pretty") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else PrettyFormatter())
    handler.addFilter(RunContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class RunLogCapture(logging.Handler):
    """Keeps the last ``lines`` log lines of each run executing in this process (its output tail).

    Runs on an event loop share stdout, so their output cannot be told apart; their log
    records can: each carries the run it was emitted under (``current_run``).
    """

    def __init__(self, lines: int) -> None:
        super().__init__(level=logging.INFO)
        self.lines = lines
        self._tails: dict[str, deque[str]] = {}
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        run = current_run.get()
        tail = self._tails.get(run.id) if run is not None else None
        if tail is not None:
            tail.append(self.format(record))

    @contextmanager
    def capturing(self, run_id: str) -> Iterator[deque[str]]:
        """Collect the run's lines while the block runs; the deque holds the tail."""
        tail: deque[str] = deque(maxlen=self.lines)
        self._tails[run_id] = tail
        try:
            yield tail
        finally:
            self._tails.pop(run_id, None)
