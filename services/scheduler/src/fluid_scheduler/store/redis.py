"""The Redis scheduler store, shared by every scheduler replica.

Keys (under the namespace's hash tag, e.g. ``{fluid}:``, shared with the dispatcher's keys
so one namespace lives in one Redis Cluster slot):
- ``scheduler:leader``: the replica id holding the lease, with the lease as its PX expiry;
- ``scheduler:slots``: hash of task name -> JSON slot record (cursor, last slot, run id).

Taking the lease is ``SET NX PX`` and renewing it a compare-and-``PEXPIRE``, both in
scripts so the holder check and the write are one atomic step; a slot record is written
by a script that first checks the writer still holds the lease.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fluid.scheduler.errors import UnavailableError

from ..domain.records import SlotRecord

P = ParamSpec("P")
R = TypeVar("R")

# Take the free lease (SET NX PX), or extend it when the caller already holds it: a
# replica whose renewal answer was lost gets its own lease back instead of waiting it out.
ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS: leader, slots. ARGV: replica, task, record JSON.
SAVE_SLOT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""


def _unavailable(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Redis trouble reaches the domain as fluid's ``UnavailableError``."""

    @wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (RedisError, OSError) as error:
            raise UnavailableError(f"scheduler store: {error}") from error

    return call


def _ms(ttl: timedelta) -> str:
    return str(max(1, round(ttl.total_seconds() * 1000)))


def record_to_json(record: SlotRecord) -> str:
    return json.dumps(
        {
            "cursor": record.cursor.isoformat(),
            "last_slot": record.last_slot.isoformat() if record.last_slot else None,
            "last_run_id": record.last_run_id,
        }
    )


def record_from_json(text: str) -> SlotRecord:
    fields = json.loads(text)
    return SlotRecord(
        cursor=datetime.fromisoformat(fields["cursor"]),
        last_slot=datetime.fromisoformat(fields["last_slot"]) if fields["last_slot"] else None,
        last_run_id=fields["last_run_id"],
    )


class RedisSchedulerStore:
    def __init__(self, url: str, *, namespace: str = "fluid", max_connections: int = 8) -> None:
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            decode_responses=True,
            max_connections=max_connections,
            timeout=10,
            socket_connect_timeout=5,
        )
        # Typed as Any: redis-py's return types are unions of RESP shapes, while
        # decode_responses=True fixes them to str here.
        self.redis: Any = aioredis.Redis.from_pool(pool)
        prefix = f"{{{namespace}}}:scheduler:"
        self.leader_key = prefix + "leader"
        self.slots_key = prefix + "slots"
        self._acquire = self.redis.register_script(ACQUIRE)
        self._renew = self.redis.register_script(RENEW)
        self._release = self.redis.register_script(RELEASE)
        self._save = self.redis.register_script(SAVE_SLOT)

    @_unavailable
    async def acquire_leadership(self, replica: str, ttl: timedelta) -> bool:
        return bool(await self._acquire(keys=[self.leader_key], args=[replica, _ms(ttl)]))

    @_unavailable
    async def renew_leadership(self, replica: str, ttl: timedelta) -> bool:
        return bool(await self._renew(keys=[self.leader_key], args=[replica, _ms(ttl)]))

    @_unavailable
    async def release_leadership(self, replica: str) -> bool:
        return bool(await self._release(keys=[self.leader_key], args=[replica]))

    @_unavailable
    async def leader(self) -> str | None:
        holder: str | None = await self.redis.get(self.leader_key)
        return holder

    @_unavailable
    async def load_slots(self) -> Mapping[str, SlotRecord]:
        stored: dict[str, str] = await self.redis.hgetall(self.slots_key)
        return {task: record_from_json(text) for task, text in stored.items()}

    @_unavailable
    async def save_slot(self, replica: str, task: str, record: SlotRecord) -> bool:
        keys = [self.leader_key, self.slots_key]
        return bool(await self._save(keys=keys, args=[replica, task, record_to_json(record)]))

    async def clear(self) -> None:
        """Delete the lease and every slot record of this namespace."""
        await self.redis.delete(self.leader_key, self.slots_key)

    async def close(self) -> None:
        await self.redis.aclose()
