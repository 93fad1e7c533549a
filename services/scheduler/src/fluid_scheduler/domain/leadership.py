"""Leader election over the store's lease: one replica fires slots, the others stand by.

The lease is an efficiency device, not the guarantee: two replicas that both believe
they lead for a moment (a paused leader waking up) queue the same slot keys, and the
dispatcher's idempotent queueing keeps one run per slot. The lease makes that rare and
fences the slot records, which only the lease holder may write.

A leader renews its lease ``RENEWALS_PER_TTL`` times per TTL (``fluid.service.loops``) and
steps down on its own once a TTL has passed since the start of its last successful
renewal: the store's lease cannot outlive that (it started counting later), so a leader
that cannot reach the store stops before a standby can take over. A standby tries to take
the lease on every step; it wins within one step of the lease expiring, or at once when a
leader releases it on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from fluid.scheduler.errors import FluidError
from fluid.service.loops import renewal_interval

from .ports import SchedulerStore

logger = logging.getLogger("fluid.scheduling")


class Clock(Protocol):
    """Wall time for slots (UTC), monotonic time for lease deadlines."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class Leadership:
    """This replica's side of the election."""

    def __init__(
        self, store: SchedulerStore, replica_id: str, ttl: timedelta, clock: Clock
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError("the leader lease TTL must be positive")
        self.store = store
        self.replica_id = replica_id
        self.ttl = ttl
        self.clock = clock
        self.is_leader = False
        self.since: datetime | None = None
        # Bumped each time this replica becomes leader: the scheduler reloads its state.
        self.term = 0
        self._deadline = 0.0
        self._next_renewal = 0.0
        # A standby asks every step: say once that the store is unreachable, not 10 times a second.
        self._store_failing = False

    @property
    def renew_interval(self) -> float:
        return renewal_interval(self.ttl.total_seconds())

    def holds(self) -> bool:
        """Whether this replica leads right now, without asking the store."""
        if self.is_leader and self.clock.monotonic() >= self._deadline:
            self.step_down("the lease was not renewed in time")
        return self.is_leader

    def step_down(self, reason: str) -> None:
        if self.is_leader:
            logger.warning("scheduler %s is no longer the leader: %s", self.replica_id, reason)
        self.is_leader = False
        self.since = None

    async def step(self) -> bool:
        """Renew the lease when due, or try to take it; whether this replica leads."""
        started = self.clock.monotonic()
        if self.holds():
            if started < self._next_renewal:
                return True
            renewed = await self._ask(self.store.renew_leadership, started)
            if renewed is None:  # store unreachable: try again next step, until the deadline
                return self.holds()
            if not renewed:
                self.step_down("another replica holds the lease")
                return False
            self._hold_from(started)
            return True
        acquired = await self._ask(self.store.acquire_leadership, started)
        if acquired:
            self._hold_from(started)
            self.is_leader = True
            self.since = self.clock.now()
            self.term += 1
            logger.info("scheduler %s is the leader (term %d)", self.replica_id, self.term)
        return self.is_leader

    async def resign(self) -> None:
        """Release the lease on shutdown so a standby takes over at its next step."""
        if not self.is_leader:
            return
        self.is_leader, self.since = False, None
        logger.info("scheduler %s resigns the lead", self.replica_id)
        try:
            async with asyncio.timeout(self.renew_interval):
                await self.store.release_leadership(self.replica_id)
        except (FluidError, TimeoutError) as error:
            logger.warning("could not release the leader lease (it expires by itself): %s", error)

    def _hold_from(self, started: float) -> None:
        self._deadline = started + self.ttl.total_seconds()
        self._next_renewal = started + self.renew_interval

    async def _ask(self, call: _LeaseCall, started: float) -> bool | None:
        """One lease call, bounded so a hung store cannot keep a leader past its deadline."""
        try:
            async with asyncio.timeout(self.renew_interval):
                answer = await call(self.replica_id, self.ttl)
        except (FluidError, TimeoutError) as error:
            if not self._store_failing:
                logger.warning("leader lease call failed: %s", error or type(error).__name__)
            self._store_failing = True
            # Retry at the next step rather than waiting another renewal interval.
            self._next_renewal = started
            return None
        if self._store_failing:
            logger.info("the scheduler store answers again")
            self._store_failing = False
        return answer


class _LeaseCall(Protocol):
    async def __call__(self, replica: str, ttl: timedelta, /) -> bool: ...
