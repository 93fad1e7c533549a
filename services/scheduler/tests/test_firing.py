"""The scheduler's use cases with a fake clock and dispatcher: fires, missed slots, failover."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from fluid.scheduler import crontab, every
from fluid.scheduler.errors import InvalidArgumentError, UnavailableError
from fluid.scheduler.limits import limits
from fluid_scheduler.domain.firing import SlotFirer
from fluid_scheduler.domain.records import ScheduledTask
from fluid_scheduler.domain.slots import slot_key
from fluid_scheduler.store.memory import MemorySchedulerStore

from .scheduler_support import T0, FakeClock, FakeDispatcher, at, seconds, started

EVERY_SECOND = ScheduledTask("tick", every(timedelta(seconds=1)))
CATCH_UP = ScheduledTask("catch", every(timedelta(seconds=1), catch_up=True))
TICK = 0.1


def system(*tasks: ScheduledTask) -> tuple[FakeClock, FakeDispatcher, MemorySchedulerStore]:
    clock = FakeClock()
    return clock, FakeDispatcher(clock, list(tasks)), MemorySchedulerStore(clock.monotonic)


async def run_until(clock: FakeClock, until: datetime, *firers: SlotFirer) -> None:
    """What the service loop does, on the fake clock: pass, then sleep until due (≤ a tick)."""
    while clock.now() < until:
        wakes = [await firer.step() for firer in firers]
        due = [wake for wake in wakes if wake is not None]
        delay = TICK
        if due:
            delay = min(TICK, max(0.0, (min(due) - clock.now()).total_seconds()))
        clock.advance(min(delay, (until - clock.now()).total_seconds()) or TICK)


async def test_each_slot_fires_once_at_its_exact_time() -> None:
    clock, dispatcher, store = system(EVERY_SECOND)
    clock.advance(0.5)
    firer = await started(dispatcher, store)
    assert await firer.step() == at(1)  # the next slot, not a run for a past one
    assert dispatcher.runs == {}
    await run_until(clock, at(5.5), firer)
    assert seconds(dispatcher.fired("tick")) == [1, 2, 3, 4, 5]
    runs = sorted(dispatcher.runs.values(), key=lambda run: run.slot)
    assert [run.queued for run in runs] == [run.slot for run in runs]  # on time, never early
    assert [run.execute_after for run in runs] == [run.slot for run in runs]
    assert runs[0].key == slot_key("tick", at(1)) == "slot:tick:2026-01-01T00:00:01.000000+00:00"


async def test_the_lateness_of_each_fire_is_recorded() -> None:
    clock, dispatcher, store = system(EVERY_SECOND)
    dispatcher.rpc_seconds = 0.004
    firer = await started(dispatcher, store)
    await run_until(clock, at(10.5), firer)
    lateness = firer.lateness.summary()
    assert lateness.count == 10
    assert abs(lateness.p50 - 0.004) < 1e-6
    assert abs(lateness.p99 - 0.004) < 1e-6
    status = await firer.status()
    assert status.lateness == lateness


async def test_missed_slots_are_skipped_by_default_and_caught_up_once_with_catch_up() -> None:
    clock, dispatcher, store = system(EVERY_SECOND, CATCH_UP)
    firer = await started(dispatcher, store)
    await run_until(clock, at(3.5), firer)
    clock.move_to(at(30.5))  # the scheduler (or the dispatcher) was away for 27 s
    await run_until(clock, at(32.5), firer)
    # Grace 1 s: at 30.5, slots 4..29 are missed, 30 is still on time.
    assert seconds(dispatcher.fired("tick")) == [1, 2, 3, 30, 31, 32]
    assert seconds(dispatcher.fired("catch")) == [1, 2, 3, 29, 30, 31, 32]
    catch_up_run = dispatcher.runs[slot_key("catch", at(29))]
    assert catch_up_run.queued == at(30.5)
    status = {item.task: item for item in (await firer.status()).schedules}
    assert status["tick"].missed_slots == 26
    assert status["catch"].missed_slots == 26
    # Slot 30 fired 0.5 s late and counts; the catch-up run (1.5 s) is late by design: not.
    assert firer.lateness.summary().max == 0.5


async def test_a_disabled_task_does_not_fire_and_is_not_caught_up_when_enabled() -> None:
    clock, dispatcher, store = system(CATCH_UP)
    firer = await started(dispatcher, store)
    await run_until(clock, at(2.5), firer)
    dispatcher.set_enabled("catch", False)
    await firer.refresh()
    await run_until(clock, at(20.5), firer)
    assert seconds(dispatcher.fired("catch")) == [1, 2]
    status = (await firer.status()).schedules[0]
    assert (status.enabled, status.next_fire) == (False, None)
    dispatcher.set_enabled("catch", True)
    await firer.refresh()
    await run_until(clock, at(23.5), firer)
    # Disabled slots passed on purpose: no catch-up run for them.
    assert seconds(dispatcher.fired("catch")) == [1, 2, 21, 22, 23]


async def test_a_failed_queue_call_is_retried_and_the_slot_still_fires() -> None:
    clock, dispatcher, store = system(EVERY_SECOND)
    firer = await started(dispatcher, store)
    await run_until(clock, at(1.5), firer)
    dispatcher.failures = [UnavailableError("dispatcher restarting")] * 3
    clock.move_to(at(2))
    wake = await firer.step()
    retry = timedelta(seconds=firer.config.tick)
    assert wake == at(2) + retry
    status = (await firer.status()).schedules[0]
    assert "dispatcher restarting" in status.last_error
    await run_until(clock, at(3.5), firer)
    assert seconds(dispatcher.fired("tick")) == [1, 2, 3]
    # Three failed calls, each followed by a try one tick later.
    assert dispatcher.runs[slot_key("tick", at(2))].queued == at(2) + 3 * retry
    assert (await firer.status()).schedules[0].last_error == ""


async def test_a_refused_slot_passes_with_the_reason_kept() -> None:
    clock, dispatcher, store = system(EVERY_SECOND)
    firer = await started(dispatcher, store)
    dispatcher.failures = [InvalidArgumentError("params.name: field required")]
    await run_until(clock, at(2.5), firer)
    assert seconds(dispatcher.fired("tick")) == [2]
    assert dispatcher.calls == 2  # slot 1 was not asked again
    records = await store.load_slots()
    assert records["tick"].cursor == at(2)


async def test_tasks_sharing_a_slot_are_queued_in_one_bulk_call() -> None:
    tasks = [ScheduledTask(f"t{n}", every(timedelta(seconds=1))) for n in range(5)]
    clock, dispatcher, store = system(*tasks)
    firer = await started(dispatcher, store)
    await run_until(clock, at(3.5), firer)
    assert (dispatcher.calls, dispatcher.bulk_calls) == (3, 3)
    assert all(seconds(dispatcher.fired(task.name)) == [1, 2, 3] for task in tasks)


async def test_a_pass_is_cut_into_bulk_calls_of_the_dispatchers_batch_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLUID_LIMIT_QUEUE_BATCH_RUNS", "2")
    limits.cache_clear()
    try:
        tasks = [ScheduledTask(f"t{n}", every(timedelta(seconds=1))) for n in range(5)]
        clock, dispatcher, store = system(*tasks)
        firer = await started(dispatcher, store)
        await run_until(clock, at(1.5), firer)
    finally:
        limits.cache_clear()  # the next caller reads the environment monkeypatch restores
    # Five runs of one slot, two per call at most: two bulk calls and a single one.
    assert (dispatcher.calls, dispatcher.bulk_calls) == (3, 2)
    assert all(seconds(dispatcher.fired(task.name)) == [1] for task in tasks)


async def test_a_refused_run_does_not_hold_back_the_others_of_its_bulk_call() -> None:
    tasks = [ScheduledTask(f"t{n}", every(timedelta(seconds=1))) for n in range(3)]
    clock, dispatcher, store = system(*tasks)
    dispatcher.refused = {"t1"}
    firer = await started(dispatcher, store)
    await run_until(clock, at(2.5), firer)
    assert seconds(dispatcher.fired("t0")) == seconds(dispatcher.fired("t2")) == [1, 2]
    assert dispatcher.fired("t1") == []
    status = {item.task: item for item in (await firer.status()).schedules}
    assert "field required" in status["t1"].last_error
    assert status["t0"].last_error == ""
    assert (await store.load_slots())["t1"].cursor == at(2)  # refused slots pass


async def test_a_task_at_its_max_queued_does_not_hold_back_the_others_of_its_bulk_call() -> None:
    tasks = [ScheduledTask(f"t{n}", every(timedelta(seconds=1))) for n in range(3)]
    clock, dispatcher, store = system(*tasks)
    dispatcher.full = {"t1"}
    firer = await started(dispatcher, store)
    await run_until(clock, at(2.5), firer)
    assert seconds(dispatcher.fired("t0")) == seconds(dispatcher.fired("t2")) == [1, 2]
    assert dispatcher.fired("t1") == []
    status = {item.task: item for item in (await firer.status()).schedules}
    assert "runs waiting" in status["t1"].last_error


async def test_a_new_leader_goes_on_from_the_stored_cursor_without_gaps() -> None:
    clock, dispatcher, store = system(EVERY_SECOND, CATCH_UP)
    # Grace above the lease TTL: the slots of the failover fire late instead of missing.
    a = await started(dispatcher, store, ttl=2.0, grace=3.0)
    b = await started(dispatcher, store, replica="b", ttl=2.0, grace=3.0)
    await run_until(clock, at(5.5), a, b)
    assert a.leadership.is_leader and not b.leadership.is_leader
    await run_until(clock, at(12.5), b)  # a was SIGKILLed at 5.5
    assert b.leadership.is_leader
    for task in ("tick", "catch"):
        assert seconds(dispatcher.fired(task)) == list(range(1, 13))
    status = await b.status()
    assert status.leader_id == "b"
    assert status.leader_since is not None
    # a renewed every TTL/3: its lease ran out between 2/3 TTL and one TTL after it died.
    assert at(5.5 + 2 * 2.0 / 3) <= status.leader_since <= at(5.5 + 2.0 + TICK)


async def test_a_failover_longer_than_the_grace_follows_the_missed_slot_policy() -> None:
    clock, dispatcher, store = system(EVERY_SECOND, CATCH_UP)
    a = await started(dispatcher, store, ttl=4.0, grace=1.0)
    b = await started(dispatcher, store, replica="b", ttl=4.0, grace=1.0)
    await run_until(clock, at(5.5), a, b)
    await run_until(clock, at(14.5), b)
    status = {item.task: item for item in (await b.status()).schedules}
    fired = {task: set(seconds(dispatcher.fired(task))) for task in ("tick", "catch")}
    missing = {task: set(range(1, 15)) - fired[task] for task in fired}
    assert missing["tick"] and len(missing["tick"]) == status["tick"].missed_slots
    assert len(missing["catch"]) == status["catch"].missed_slots - 1
    assert max(missing["catch"]) < max(missing["tick"])  # the latest missed slot did fire


async def test_two_leaders_at_once_still_queue_each_slot_once() -> None:
    clock = FakeClock()
    dispatcher = FakeDispatcher(clock, [EVERY_SECOND])
    # A split brain: each replica has its own store, so each believes it leads.
    a = await started(dispatcher, MemorySchedulerStore(clock.monotonic), replica="a")
    b = await started(dispatcher, MemorySchedulerStore(clock.monotonic), replica="b")
    await run_until(clock, at(6.5), a, b)
    assert a.leadership.is_leader and b.leadership.is_leader
    assert dispatcher.calls == 12  # both asked for every slot...
    assert seconds(dispatcher.fired("tick")) == [1, 2, 3, 4, 5, 6]  # ...one run each


async def test_jitter_and_randomize_delay_the_execution_not_the_slot() -> None:
    clock, dispatcher, store = system()
    dispatcher.tasks = [
        ScheduledTask(
            "spread", every(timedelta(seconds=1), jitter=timedelta(seconds=0.5)), True, lambda: 2.0
        )
    ]
    firer = await started(dispatcher, store)
    await run_until(clock, at(20.5), firer)
    runs = list(dispatcher.runs.values())
    assert seconds(sorted(run.slot for run in runs)) == list(range(1, 21))
    delays = [(run.execute_after - run.slot).total_seconds() for run in runs]
    assert all(2.0 <= delay <= 2.5 for delay in delays)
    assert len(set(delays)) > 1


async def test_a_crontab_task_fires_on_its_minutes_only() -> None:
    clock, dispatcher, store = system(ScheduledTask("report", crontab(minute="*/2")))
    firer = await started(dispatcher, store)
    await run_until(clock, T0 + timedelta(minutes=7), firer)
    assert seconds(dispatcher.fired("report")) == [120, 240, 360]


async def test_the_status_shows_next_fire_last_run_and_leader_to_any_replica() -> None:
    clock, dispatcher, store = system(EVERY_SECOND, ScheduledTask("report", crontab(0, 9)))
    leader = await started(dispatcher, store)
    standby = await started(dispatcher, store, replica="b")
    await run_until(clock, at(3.5), leader, standby)
    for firer in (leader, standby):
        status = await firer.status()
        assert status.leader_id == "a"
        tick, report = status.schedules[1], status.schedules[0]
        assert (tick.task, tick.description) == ("tick", "every 0:00:01")
        assert tick.last_slot == at(3)
        assert tick.last_run_id == dispatcher.runs[slot_key("tick", at(3))].id
        assert tick.next_fire == at(4)
        assert report.next_fire == T0 + timedelta(hours=9)
        assert (report.last_slot, report.last_run_id) == (None, "")
    assert (await leader.status()).leader_since == T0
    assert (await standby.status()).leader_since is None
