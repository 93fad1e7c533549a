"""What the domain needs from outside it: the run store, as protocols.

Stores implement these (and the contract tests hold them to it); they depend on the
domain, never the other way around.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from fluid.scheduler.run import Run

from .query import RunPage, RunQuery
from .snapshots import RecordResult


class ExpiringStore(Protocol):
    """The part of ``RunStore`` retention uses."""

    async def delete_queued_before(self, cutoff: datetime, limit: int) -> int:
        """Delete up to ``limit`` runs queued before ``cutoff``, oldest first; return how many."""


class RunStore(ExpiringStore, Protocol):
    """Durable run snapshots, one row per run: the highest version seen."""

    async def open(self) -> None:
        """Connect and make sure the schema is current; called once before any other method."""

    async def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""

    async def record(self, snapshots: Sequence[Run]) -> RecordResult:
        """Store each snapshot whose version is above its run's stored version.

        Several snapshots of one run count once, with their highest version. A snapshot
        the database refuses (a value it cannot hold) is refused alone and the next
        highest of its run stands in; every other one is committed. A database that
        cannot be reached is ``UnavailableError``: what was not committed may be sent
        again, since stored versions are never written twice.
        """

    async def list_runs(self, query: RunQuery) -> RunPage:
        """One page of the runs matching ``query``, newest queued first, ties by id."""

    async def get_run(self, run_id: str) -> Run | None:
        """The stored run, or None."""
