"""The SchedulerStore contract: one suite, run on every store in conftest's STORE_FACTORIES.

Lease expiry is the store's own clock (Redis PX, the memory store's monotonic clock), so
the expiry tests wait a real, short TTL.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fluid_scheduler.domain.ports import SchedulerStore
from fluid_scheduler.domain.records import SlotRecord

TTL = timedelta(seconds=30)
SHORT_TTL = timedelta(milliseconds=150)
SLOT = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


async def test_a_free_lease_goes_to_the_first_replica_only(store: SchedulerStore) -> None:
    assert await store.leader() is None
    assert await store.acquire_leadership("a", TTL)
    assert not await store.acquire_leadership("b", TTL)
    assert await store.leader() == "a"


async def test_the_holder_may_take_its_own_lease_again(store: SchedulerStore) -> None:
    assert await store.acquire_leadership("a", SHORT_TTL)
    assert await store.acquire_leadership("a", TTL)  # extended, not lost
    await asyncio.sleep(2 * SHORT_TTL.total_seconds())
    assert await store.leader() == "a"


async def test_only_the_holder_renews(store: SchedulerStore) -> None:
    await store.acquire_leadership("a", SHORT_TTL)
    assert not await store.renew_leadership("b", TTL)
    assert await store.renew_leadership("a", TTL)
    await asyncio.sleep(2 * SHORT_TTL.total_seconds())
    assert await store.leader() == "a"


async def test_an_unrenewed_lease_expires_and_another_replica_takes_it(
    store: SchedulerStore,
) -> None:
    await store.acquire_leadership("a", SHORT_TTL)
    await asyncio.sleep(2 * SHORT_TTL.total_seconds())
    assert await store.leader() is None
    assert not await store.renew_leadership("a", TTL)
    assert await store.acquire_leadership("b", TTL)
    assert await store.leader() == "b"


async def test_only_the_holder_releases(store: SchedulerStore) -> None:
    await store.acquire_leadership("a", TTL)
    assert not await store.release_leadership("b")
    assert await store.leader() == "a"
    assert await store.release_leadership("a")
    assert await store.leader() is None
    assert await store.acquire_leadership("b", TTL)


async def test_slot_records_round_trip(store: SchedulerStore) -> None:
    await store.acquire_leadership("a", TTL)
    fired = SlotRecord(cursor=SLOT, last_slot=SLOT, last_run_id="run-1")
    skipped = SlotRecord(cursor=SLOT + timedelta(minutes=5))
    assert await store.save_slot("a", "report", fired)
    assert await store.save_slot("a", "tick", skipped)
    assert await store.load_slots() == {"report": fired, "tick": skipped}
    later = SlotRecord(cursor=SLOT + timedelta(days=1), last_slot=SLOT, last_run_id="run-1")
    assert await store.save_slot("a", "report", later)
    assert (await store.load_slots())["report"] == later


async def test_slot_records_keep_their_time_zone_instant(store: SchedulerStore) -> None:
    await store.acquire_leadership("a", TTL)
    local = datetime.fromisoformat("2026-03-29T03:00:00+02:00")
    await store.save_slot("a", "report", SlotRecord(cursor=local, last_slot=local))
    loaded = (await store.load_slots())["report"]
    assert loaded.cursor == local
    assert loaded.last_slot == local


async def test_only_the_lease_holder_writes_slot_records(store: SchedulerStore) -> None:
    record = SlotRecord(cursor=SLOT, last_slot=SLOT, last_run_id="run-1")
    assert not await store.save_slot("a", "report", record)  # nobody leads
    await store.acquire_leadership("a", TTL)
    assert not await store.save_slot("b", "report", record)
    assert await store.load_slots() == {}
    assert await store.save_slot("a", "report", record)
    assert await store.load_slots() == {"report": record}
