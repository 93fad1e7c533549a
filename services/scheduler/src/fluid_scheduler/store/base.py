"""The scheduler's store interface: the leader lease and each task's slot record.

One replica at a time holds the lease; it alone may write slot records (the write is
refused once the lease is someone else's), so a deposed leader cannot move a cursor
backwards. Reads are open to every replica: a standby answers ListSchedules from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Protocol

from ..domain.records import SlotRecord


class SchedulerStore(Protocol):
    async def acquire_leadership(self, replica: str, ttl: timedelta) -> bool:
        """Take the lease if it is free (or already ``replica``'s): it then lasts ``ttl``."""

    async def renew_leadership(self, replica: str, ttl: timedelta) -> bool:
        """Extend the lease to ``ttl`` from now, only if ``replica`` still holds it."""

    async def release_leadership(self, replica: str) -> bool:
        """Give the lease up, only if ``replica`` holds it (a standby takes over at once)."""

    async def leader(self) -> str | None:
        """The replica holding the lease, if any."""

    async def load_slots(self) -> Mapping[str, SlotRecord]:
        """Every task's slot record, by task name."""

    async def save_slot(self, replica: str, task: str, record: SlotRecord) -> bool:
        """Store ``task``'s record if ``replica`` holds the lease; False (unchanged) if not."""

    async def close(self) -> None: ...
