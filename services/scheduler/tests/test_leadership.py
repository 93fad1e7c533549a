"""Leader election with a clock the tests move: one leader, takeover within the TTL, fencing."""

from __future__ import annotations

from datetime import timedelta

from fluid.scheduler.errors import UnavailableError
from fluid_scheduler.domain.leadership import Leadership
from fluid_scheduler.domain.records import SlotRecord
from fluid_scheduler.store.memory import MemorySchedulerStore

from .scheduler_support import FakeClock

TTL = timedelta(seconds=3)
TICK = 0.1


class FlakyStore(MemorySchedulerStore):
    """A memory store that can be made unreachable."""

    down = False

    async def renew_leadership(self, replica: str, ttl: timedelta) -> bool:
        if self.down:
            raise UnavailableError("store down")
        return await super().renew_leadership(replica, ttl)

    async def acquire_leadership(self, replica: str, ttl: timedelta) -> bool:
        if self.down:
            raise UnavailableError("store down")
        return await super().acquire_leadership(replica, ttl)


def replicas(clock: FakeClock, store: MemorySchedulerStore, *names: str) -> tuple[Leadership, ...]:
    return tuple(Leadership(store, name, TTL, clock) for name in names)


async def steps(clock: FakeClock, seconds: float, *sides: Leadership) -> float | None:
    """Step every replica each tick for ``seconds``; when (after start) a new leader rose."""
    leaders = {side.replica_id for side in sides if side.is_leader}
    elapsed = 0.0
    while elapsed < seconds:
        clock.advance(TICK)
        elapsed += TICK
        for side in sides:
            if await side.step() and side.replica_id not in leaders:
                return elapsed
    return None


async def test_the_first_replica_leads_and_the_others_stand_by() -> None:
    clock = FakeClock()
    store = MemorySchedulerStore(clock.monotonic)
    a, b, c = replicas(clock, store, "a", "b", "c")
    assert await a.step()
    assert not await b.step()
    assert not await c.step()
    assert await store.leader() == "a"
    assert a.since == clock.now()
    assert a.term == 1
    assert (b.since, b.term) == (None, 0)


async def test_a_leader_that_keeps_stepping_keeps_the_lease() -> None:
    clock = FakeClock()
    store = MemorySchedulerStore(clock.monotonic)
    a, b = replicas(clock, store, "a", "b")
    await a.step()
    assert await steps(clock, 10 * TTL.total_seconds(), a, b) is None
    assert a.is_leader and not b.is_leader
    assert a.term == 1


async def test_a_standby_takes_over_within_the_ttl_when_the_leader_dies() -> None:
    clock = FakeClock()
    store = MemorySchedulerStore(clock.monotonic)
    a, b, c = replicas(clock, store, "a", "b", "c")
    await a.step()
    await steps(clock, 1.0, a, b, c)  # a renews once in a while, then dies silently
    takeover = await steps(clock, 2 * TTL.total_seconds(), b, c)
    assert takeover is not None
    assert takeover <= TTL.total_seconds() + TICK
    assert (b.is_leader, c.is_leader).count(True) == 1
    assert await store.leader() in ("b", "c")


async def test_a_paused_leader_steps_down_and_cannot_write_slot_records() -> None:
    clock = FakeClock()
    store = MemorySchedulerStore(clock.monotonic)
    a, b = replicas(clock, store, "a", "b")
    await a.step()
    clock.advance(TTL.total_seconds() + TICK)  # a is paused (GC, stopped VM) past its lease
    assert await b.step()
    # a wakes up: it knows its lease is over without asking anyone, and the store agrees.
    assert not a.holds()
    assert not await a.step()
    record = SlotRecord(cursor=clock.now())
    assert not await store.save_slot("a", "task", record)
    assert await store.save_slot("b", "task", record)


async def test_resigning_hands_the_lease_over_at_the_next_step() -> None:
    clock = FakeClock()
    store = MemorySchedulerStore(clock.monotonic)
    a, b = replicas(clock, store, "a", "b")
    await a.step()
    await a.resign()
    assert not a.is_leader
    clock.advance(TICK)
    assert await b.step()


async def test_a_leader_cut_off_from_the_store_stops_at_its_deadline_not_before() -> None:
    clock = FakeClock()
    store = FlakyStore(clock.monotonic)
    (a,) = replicas(clock, store, "a")
    await a.step()
    store.down = True
    held_for = 0.0
    while await a.step():
        clock.advance(TICK)
        held_for += TICK
    # Renewals failed from the first third of the TTL on; it stepped down at the TTL.
    assert TTL.total_seconds() - TICK <= held_for <= TTL.total_seconds() + TICK
    store.down = False
    clock.advance(TICK)
    assert await a.step()  # its own lease may have expired or not: either way it is back
    assert a.term == 2


async def test_a_renewal_that_comes_back_in_time_keeps_the_lead() -> None:
    clock = FakeClock()
    store = FlakyStore(clock.monotonic)
    (a,) = replicas(clock, store, "a")
    await a.step()
    clock.advance(TTL.total_seconds() / 3)
    store.down = True
    assert await a.step()  # failed renewal, still within the lease
    store.down = False
    clock.advance(TICK)
    assert await a.step()
    assert a.term == 1
