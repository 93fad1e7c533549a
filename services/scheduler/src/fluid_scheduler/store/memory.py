"""The in-process scheduler store of the embedded mode (``FLUID_BROKER_URL=memory://``).

One process has one replica, which takes the free lease on its first try and keeps it:
the embedded scheduler is always the leader. The lease still expires and is refused to
others exactly like the Redis one, so both stores pass the same contract suite.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import timedelta

from ..domain.records import SlotRecord


class MemorySchedulerStore:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._holder: str | None = None
        self._expires = 0.0
        self._slots: dict[str, SlotRecord] = {}

    def _current(self) -> str | None:
        if self._holder is not None and self._monotonic() >= self._expires:
            self._holder = None
        return self._holder

    async def acquire_leadership(self, replica: str, ttl: timedelta) -> bool:
        if self._current() not in (None, replica):
            return False
        self._holder, self._expires = replica, self._monotonic() + ttl.total_seconds()
        return True

    async def renew_leadership(self, replica: str, ttl: timedelta) -> bool:
        if self._current() != replica:
            return False
        self._expires = self._monotonic() + ttl.total_seconds()
        return True

    async def release_leadership(self, replica: str) -> bool:
        if self._current() != replica:
            return False
        self._holder = None
        return True

    async def leader(self) -> str | None:
        return self._current()

    async def load_slots(self) -> Mapping[str, SlotRecord]:
        return dict(self._slots)

    async def save_slot(self, replica: str, task: str, record: SlotRecord) -> bool:
        if self._current() != replica:
            return False
        self._slots[task] = record
        return True

    async def close(self) -> None:
        pass
