"""What the scheduler's domain needs from outside it, as protocols: the store of the leader
lease and slot records, where the scheduled tasks are listed, where slots' runs are queued.

Stores (``store/``) and the dispatcher adapter (``dispatcher.py``) implement these (the
contract tests hold the stores to it); they depend on the domain, never the other way
around.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Protocol

from fluid.scheduler.models import RunRequest

from .records import ScheduledTask, SlotRecord


class SchedulerStore(Protocol):
    """The leader lease and each task's slot record.

    One replica at a time holds the lease; it alone may write slot records (the write is
    refused once the lease is someone else's), so a deposed leader cannot move a cursor
    backwards. Reads are open to every replica: a standby answers ListSchedules from them.
    """

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


class TaskSource(Protocol):
    """Where the scheduled tasks are listed: the dispatcher."""

    async def scheduled_tasks(self) -> list[ScheduledTask]:
        """Every registered task that has a schedule."""


class SlotQueuer(Protocol):
    """Where slots' runs are queued: the dispatcher."""

    async def queue_request(self, request: RunRequest) -> str:
        """Queue ``request`` once per idempotency key; the run's id."""

    async def queue_requests(self, requests: Sequence[RunRequest]) -> Sequence[str]:
        """Queue every request in one call, all or nothing; their runs' ids, in order."""
