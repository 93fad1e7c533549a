"""What only the Redis store can meet: outbox entries it cannot read, letters without a
snapshot, a namespace written before the counts of waiting runs existed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from fluid.scheduler.definition import TaskDefinition
from fluid.scheduler.errors import ResourceExhaustedError
from fluid.scheduler.models import TaskState, WorkerKind
from fluid.scheduler.run import Run
from fluid_dispatcher.domain.records import WorkerRecord
from fluid_dispatcher.store.redis import RedisQueueStore

from servers import redis_url

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def store() -> AsyncIterator[RedisQueueStore]:
    opened = RedisQueueStore(redis_url(), namespace=f"test-{uuid.uuid4().hex[:12]}")
    try:
        yield opened
    finally:
        await opened.delete_namespace()
        await opened.close()


async def test_an_unreadable_outbox_entry_becomes_a_dead_letter_not_a_failure(
    store: RedisQueueStore,
) -> None:
    await store.read_outbox(1)  # creates the consumer group
    await store.redis.xadd(store.key("outbox"), {"id": "run-x", "snapshot": "{not json"})

    (entry,) = await store.read_outbox(10)
    with pytest.raises(ValueError, match="cannot be read"):
        entry.run()
    await store.add_dead_letters([(entry, "the snapshot cannot be encoded")], NOW)

    assert await store.read_outbox(10) == []
    (letter,) = await store.dead_letters(10)
    assert (letter.run_id, letter.reason) == ("run-x", "the snapshot cannot be encoded")


async def test_a_letter_without_a_snapshot_stays_when_all_are_retried(
    store: RedisQueueStore,
) -> None:
    await store.redis.xadd(store.key("dead"), {"run_id": "lost", "snapshot": "", "time": "0"})

    assert await store.retry_dead_letters(None) == 0

    assert [letter.run_id for letter in await store.dead_letters(10)] == ["lost"]
    assert await store.outbox_size() == 0


async def test_max_queued_counts_runs_queued_before_the_counts_existed(
    store: RedisQueueStore,
) -> None:
    worker_tasks = [TaskDefinition(name="add")]
    await store.register_worker(
        WorkerRecord("w", WorkerKind.io, frozenset({"add"}), 1, NOW), worker_tasks, None
    )
    for index in range(3):
        await store.add_run(_queued(f"old-{index}", execute_after=NOW if index else None))
    # As a namespace written by a release without the counts looks.
    await store.redis.delete(store.key("waiting"), store.key("waiting-v1"))

    with pytest.raises(ResourceExhaustedError, match="has 3 runs waiting"):
        await store.add_run(_queued("new"), max_queued=3)
    assert (await store.add_run(_queued("new"), max_queued=4))[1]


def _queued(run_id: str, execute_after: datetime | None = None) -> Run:
    return Run(
        id=run_id,
        task="add",
        state=TaskState.queued,
        queued=NOW,
        execute_after=execute_after,
        version=1,
    )


async def test_a_take_that_skips_an_empty_list_still_sees_another_replicas_announcement(
    store: RedisQueueStore,
) -> None:
    replica = RedisQueueStore(redis_url(), namespace=store.prefix.strip("{}:"))
    try:
        await store.work_ticket()  # subscribed: the signals it hears keep its skips honest
        assert await store.take_announced(["add"], 10) == []
        # Found empty, nothing heard since: the next take does not ask Redis.
        await store.redis.rpush(store.key("announced", "add"), "unheard")
        assert await store.take_announced(["add"], 10) == []
        await store.redis.delete(store.key("announced", "add"))

        await replica.announce([("add", "a1")])
        taken: list[str] = []
        for _ in range(200):  # the signal reaches this store's subscription
            taken = await store.take_announced(["add"], 10)
            if taken:
                break
            await asyncio.sleep(0.01)
        assert taken == ["a1"]
        # Its own announcements count at once, before their signal comes back.
        await store.announce([("add", "a2")])
        assert await store.take_announced(["add"], 10) == ["a2"]
    finally:
        await replica.close()
