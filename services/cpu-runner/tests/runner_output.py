"""Awaiting the output lines the runner logs, so tests can watch a run while it runs."""

from __future__ import annotations

import asyncio
import logging


class OutputLines(logging.Handler):
    """The output lines the runner logs, awaitable: real-time streaming is observable."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        # Called on the event loop: the runner logs from its pipe readers.
        self.records.append(record)
        self._changed.set()

    def of(self, run_id: str) -> list[str]:
        return [
            record.getMessage()
            for record in self.records
            if record.__dict__.get("run_id") == run_id
        ]

    async def wait_for(self, run_id: str, text: str, timeout: float = 20) -> str:
        """The first line of ``run_id`` containing ``text``, once it was logged."""
        async with asyncio.timeout(timeout):
            while True:
                for line in self.of(run_id):
                    if text in line:
                        return line
                self._changed.clear()
                await self._changed.wait()
