"""The Redis queue store: the same contract as the memory store, shared by replicas.

Layout (every key under one hash tag, e.g. ``{fluid}:``):
- ``run:<id>`` hash of the run's fields (``run_fields``), plus its lease while running;
- ``ready:<task>`` sorted set of ready runs by lease score (see domain/ordering.py);
- ``delayed`` sorted set of runs by due time; ``blocked`` runs awaiting a rate-limit decision;
- ``leases`` sorted set of running runs by lease deadline; ``running:<task>`` counters;
- ``finished`` sorted set of finished runs by end time, for purging;
- ``idem:<key>`` idempotency keys; ``tasks``/``enabled`` hashes; ``worker:<id>`` hashes;
- ``depth`` (per priority) and ``waiting`` (per task, for max_queued) counts of queued runs;
- ``outbox`` stream (consumer group ``history``) of snapshots for history;
- ``dead`` stream of snapshots history refused, with the reason (dead letters);
- pub/sub: ``signals`` says "work" when a run becomes ready; ``run:<id>:changes`` carries
  each new snapshot of that run to its watchers.

Each writing operation is one Lua script (redis_scripts.py), so decisions such as
max_concurrency are atomic across every dispatcher replica and O(1) per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import json
import logging
import os
import socket
import time
import typing
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, TypeVar

import redis.asyncio as aioredis
from google.protobuf import json_format
from redis.exceptions import (
    ClusterDownError,
    ExecAbortError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fluid.scheduler import wire
from fluid.scheduler.definition import TaskDefinition
from fluid.scheduler.errors import FluidError, ResourceExhaustedError, UnavailableError
from fluid.scheduler.models import HeartbeatReply, RunError, TaskPriority, TaskState, WorkerKind
from fluid.scheduler.run import Run
from fluid.scheduler.status import DeadLetter
from fluid.scheduler.v1 import task_pb2

from ..domain.ordering import ready_score
from ..domain.ports import (
    BLOCKED_RECOVERY,
    MAX_ANNOUNCED_PER_TASK,
    MAX_DEAD_LETTERS,
    Blocked,
    LeaseBatch,
    OutboxEntry,
    QueueStore,
    Registered,
    WorkTicket,
    queue_full,
)
from ..domain.records import Lease, TaskRecord, WorkerRecord
from . import redis_scripts
from .feed import ChangeFeed, drain
from .signals import Signal, newer_versions

logger = logging.getLogger("fluid.dispatcher.redis")

OUTBOX_GROUP = "history"
# Outbox entries read by a consumer that died are claimed by another after this.
OUTBOX_CLAIM_IDLE_MS = 30_000
# Connections to Redis one store opens at most (FLUID_BROKER_MAX_CONNECTIONS defaults to it).
DEFAULT_MAX_CONNECTIONS = 64
# Runs added by one script call: a thousand runs hold Redis for tens of milliseconds.
ADD_CHUNK = 200
# Tasks whose empty announced list a store remembers; past it, it forgets them all.
MAX_EMPTY_REMEMBERED = 10_000


def _ts(value: datetime | None) -> str:
    return repr(value.timestamp()) if value is not None else ""


def _dt(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(float(value), UTC) if value else None


@dataclass(frozen=True, slots=True)
class FieldCodec:
    """How a value of one type is kept as a string of the run's hash."""

    encode: Callable[[Any], str]
    decode: Callable[[str], Any]


def _error_to_hash(error: RunError | None) -> str:
    return json.dumps(asdict(error)) if error else ""


def _error_from_hash(value: str) -> RunError | None:
    return RunError(**json.loads(value)) if value else None


def _tags_to_hash(tags: frozenset[str]) -> str:
    # Sorted, so that equal sets make equal hashes (and snapshots).
    return json.dumps(sorted(tags))


def _tags_from_hash(value: str) -> frozenset[str]:
    return frozenset(json.loads(value))


def _lines_from_hash(value: str) -> tuple[str, ...]:
    return tuple(json.loads(value))


_JSON = FieldCodec(json.dumps, json.loads)

# The codec of each type a field of Run has (as typing.get_type_hints resolves it). The
# Lua scripts compare and set the scalar ones (state, times, counts) as these strings and
# never decode the JSON ones.
CODECS: dict[object, FieldCodec] = {
    str: FieldCodec(str, str),
    int: FieldCodec(str, int),
    datetime | None: FieldCodec(_ts, _dt),
    TaskPriority: FieldCodec(attrgetter("value"), TaskPriority),
    TaskState: FieldCodec(attrgetter("value"), TaskState),
    RunError | None: FieldCodec(_error_to_hash, _error_from_hash),
    dict[str, Any]: _JSON,
    dict[str, str]: _JSON,
    Any: _JSON,
    frozenset[str]: FieldCodec(_tags_to_hash, _tags_from_hash),
    tuple[str, ...]: FieldCodec(json.dumps, _lines_from_hash),
}

# Hash keys that are not their field's name: the Lua scripts compare and bump "v".
RENAMED_KEYS = {"version": "v"}


def _hash_fields() -> tuple[tuple[str, str, FieldCodec], ...]:
    """(field, hash key, codec) for every field of Run, in field order; a field of a type
    without a codec fails here, at import, rather than travelling in some other shape."""
    types = typing.get_type_hints(Run)
    hash_fields = []
    for item in dataclasses.fields(Run):
        codec = CODECS.get(types[item.name])
        if codec is None:
            raise TypeError(
                f"Run.{item.name} is a {types[item.name]}, which has no Redis hash codec: "
                "add one to store.redis.CODECS"
            )
        hash_fields.append((item.name, RENAMED_KEYS.get(item.name, item.name), codec))
    return tuple(hash_fields)


_HASH_FIELDS = _hash_fields()
HASH_KEYS = {name: key for name, key, _ in _HASH_FIELDS}
"""The hash key of every field of Run."""


def run_fields(run: Run) -> dict[str, str]:
    """A run as the string fields of its Redis hash."""
    fields = {key: codec.encode(getattr(run, name)) for name, key, codec in _HASH_FIELDS}
    due = run.execute_after or run.queued
    # Lease order once ready, precomputed so the Lua scripts need no priority rules.
    fields["score"] = repr(ready_score(run.priority, due)) if due else "0"
    return fields


def run_from_fields(fields: Mapping[str, str]) -> Run:
    """The run a hash holds; a key it lacks (written before its field existed) leaves
    that field at Run's default."""
    return Run(
        **{name: codec.decode(fields[key]) for name, key, codec in _HASH_FIELDS if key in fields}
    )


def lease_from_fields(fields: Mapping[str, str]) -> Lease | None:
    if not fields.get("lease_worker"):
        return None
    deadline = _dt(fields["lease_deadline"])
    assert deadline is not None
    return Lease(
        run_id=fields["id"],
        worker_id=fields["lease_worker"],
        attempt=int(fields["lease_attempt"]),
        deadline=deadline,
        abort_reason=fields.get("abort"),
    )


def _outbox_entry(entry_id: str, stored: Mapping[str, str]) -> OutboxEntry:
    """An outbox stream entry as the domain reads it; one that cannot be read becomes an
    entry whose ``run()`` raises, so the forwarder makes it a dead letter instead of failing on it
    every round."""
    try:
        fields = json.loads(stored["snapshot"])
        return OutboxEntry(
            entry_id, fields["id"], int(fields["v"]), functools.partial(run_from_fields, fields)
        )
    except (KeyError, TypeError, ValueError) as error:
        problem = f"outbox entry {entry_id} cannot be read: {type(error).__name__}: {error}"
        return OutboxEntry(
            entry_id, stored.get("id", ""), 0, functools.partial(_unreadable, problem)
        )


_StoreClass = TypeVar("_StoreClass", bound=type)
# Replies of a Redis that is up but cannot serve now (loading, failing over, a replica).
_UNAVAILABLE_ERRORS = (
    RedisConnectionError,  # BusyLoadingError too
    RedisTimeoutError,
    ReadOnlyError,
    ClusterDownError,  # MasterDownError too
    TryAgainError,
    # A transaction discarded because a command was refused when queued (e.g. OOM).
    ExecAbortError,
)


def store_error(error: RedisError) -> FluidError | None:
    """What a Redis failure means to a caller, without Redis's address or internals
    (None: a failure callers cannot act on, a bug to log in full)."""
    if isinstance(error, OutOfMemoryError) or "maxmemory" in str(error):
        return ResourceExhaustedError("the queue store is full (Redis maxmemory); try later")
    if isinstance(error, _UNAVAILABLE_ERRORS):
        return UnavailableError("the queue store cannot be reached or cannot serve now; try again")
    return None


def _translated(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except RedisError as error:
            translated = store_error(error)
            if translated is None:
                raise
            raise translated from error

    return call


def _translating_store_errors(cls: _StoreClass) -> _StoreClass:
    """Every public coroutine of the store raises fluid's errors for Redis failures, so
    servicers answer UNAVAILABLE / RESOURCE_EXHAUSTED and loops see typed errors."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.iscoroutinefunction(member):
            setattr(cls, name, _translated(member))
    return cls


@_translating_store_errors
class RedisQueueStore(QueueStore):
    """A ``QueueStore`` in Redis (redis-py asyncio)."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "fluid",
        outbox: bool = True,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        # A burst of RPCs waits for a free connection instead of failing the calls.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, decode_responses=True, max_connections=max_connections, timeout=30
        )
        # Typed as Any: redis-py's return types are unions of bytes/str/RESP2/RESP3 shapes,
        # while decode_responses=True and RESP2 fix them to str and lists here.
        self.redis: Any = aioredis.Redis.from_pool(pool)
        self.prefix = f"{{{namespace}}}:"
        self._outbox = "1" if outbox else "0"
        self._consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._add = self.redis.register_script(redis_scripts.ADD_RUNS)
        self._apply = self.redis.register_script(redis_scripts.APPLY)
        self._lease = self.redis.register_script(redis_scripts.LEASE)
        self._renew = self.redis.register_script(redis_scripts.RENEW)
        self._register = self.redis.register_script(redis_scripts.REGISTER)
        self._request_abort = self.redis.register_script(redis_scripts.REQUEST_ABORT)
        self._purge = self.redis.register_script(redis_scripts.PURGE)
        self._rebuild_waiting = self.redis.register_script(redis_scripts.REBUILD_WAITING)
        self._waiting_checked = False
        self._work = Signal()
        # Per watched run, the queues of its local watchers: a snapshot, or None meaning
        # "changes may have been missed, read the run again".
        self._watchers: dict[str, set[asyncio.Queue[Run | None]]] = {}
        self._feed = ChangeFeed()
        # Set by the first change stream and kept until the store closes: unsubscribing
        # from inside a cancelled stream could wait on the connection pool (and leak).
        self._watching_every_change = False
        self._pubsub: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._group_ready = False
        self._next_due: float | None = None
        self._next_claim = 0.0
        # Announcements heard of (``announce`` here, "announced" signals from any replica),
        # bumped too on each (re)subscription, when what was published meanwhile is
        # unknown. A task whose list a take found empty, with nothing heard since, is not
        # asked again: most lease replies then cost no round trip for the settled runs.
        self._announcements = 0
        self._subscribed = False
        self._found_empty: dict[str, int] = {}

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _args(self, *values: str) -> list[str]:
        return [self.prefix, self._outbox, *values]

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        self._resync_watchers()
        self._feed.close()
        await self.redis.aclose()

    # -- change notifications ------------------------------------------------------
    @property
    def _every_change(self) -> str:
        return self._changes("*")

    def _changes(self, run_id: str) -> str:
        return self.key("run", run_id, "changes")

    async def _ensure_listener(self) -> None:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="redis-signals")
        await self._listening.wait()

    async def _listen(self) -> None:
        """One subscription per store feeds every local long poll and watcher."""
        while True:
            self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await self._pubsub.subscribe(
                    self.key("signals"), *(self._changes(run_id) for run_id in self._watchers)
                )
                if self._watching_every_change:
                    await self._pubsub.psubscribe(self._every_change)
                self._announcements += 1
                self._subscribed = True
                self._listening.set()
                # Anything published while (re)subscribing is unknown: wake everyone.
                self._work.fire()
                self._resync_watchers()
                async for message in self._pubsub.listen():
                    channel, data = message["channel"], message["data"]
                    if channel == self.key("signals"):
                        if data == "work":
                            self._work.fire()
                        elif data == "announced":
                            self._announcements += 1
                        continue
                    run = run_from_fields(json.loads(data))
                    # A watched run's change arrives twice: on its channel ("message")
                    # and through the pattern ("pmessage"); each kind has its readers.
                    if message["type"] == "pmessage":
                        self._feed.publish(run)
                        continue
                    for queue in self._watchers.get(run.id, ()):
                        queue.put_nowait(run)
            except (ConnectionError, OSError, aioredis.ConnectionError) as error:
                self._subscribed = False
                logger.warning("lost the Redis subscription (%s); resubscribing", error)
                # Changes published meanwhile are gone: end those streams, they resubscribe.
                self._feed.close()
                await asyncio.sleep(0.5)
            finally:
                self._subscribed = False
                with contextlib.suppress(Exception):
                    await self._pubsub.aclose()

    def _resync_watchers(self) -> None:
        for queues in self._watchers.values():
            for queue in queues:
                queue.put_nowait(None)

    # -- tasks and workers -------------------------------------------------------
    async def register_worker(
        self,
        worker: WorkerRecord,
        definitions: Sequence[TaskDefinition],
        generation: datetime | None,
    ) -> list[Registered]:
        pairs = [
            value
            for definition in definitions
            for value in (
                definition.name,
                json_format.MessageToJson(wire.definition_to_pb(definition)),
            )
        ]
        found = await self._register(args=self._args(_ts(generation), *pairs)) if pairs else []
        registered = [
            Registered(
                self._task(before, None, None).definition if before else None,
                _dt(stored),
                taken == 1,
            )
            for before, stored, taken in zip(found[0::3], found[1::3], found[2::3], strict=True)
        ]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key("worker", worker.worker_id), mapping=self._worker_fields(worker))
            pipe.sadd(self.key("workers"), worker.worker_id)
            await pipe.execute()
        return registered

    async def get_worker(self, worker_id: str) -> WorkerRecord | None:
        fields = await self.redis.hgetall(self.key("worker", worker_id))
        return self._worker(worker_id, fields) if fields else None

    @staticmethod
    def _worker_fields(worker: WorkerRecord) -> dict[str, str]:
        # The id is the hash's key, not one of its fields.
        return {
            "kind": worker.kind.value,
            "tasks": json.dumps(sorted(worker.task_names)),
            "concurrency": str(worker.concurrency),
            "last_seen": _ts(worker.last_seen),
        }

    @staticmethod
    def _worker(worker_id: str, fields: Mapping[str, str]) -> WorkerRecord:
        last_seen = _dt(fields["last_seen"])
        assert last_seen is not None
        return WorkerRecord(
            worker_id=worker_id,
            kind=WorkerKind(fields["kind"]),
            task_names=frozenset(json.loads(fields["tasks"])),
            concurrency=int(fields["concurrency"]),
            last_seen=last_seen,
        )

    async def remove_worker(self, worker_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.key("worker", worker_id))
            pipe.srem(self.key("workers"), worker_id)
            await pipe.execute()

    async def list_workers(self) -> list[WorkerRecord]:
        ids = sorted(await self.redis.smembers(self.key("workers")))
        async with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in ids:
                pipe.hgetall(self.key("worker", worker_id))
            found = await pipe.execute()
        return [self._worker(i, fields) for i, fields in zip(ids, found, strict=True) if fields]

    @staticmethod
    def _task(encoded: str, enabled: str | None, generation: str | None) -> TaskRecord:
        message = json_format.Parse(encoded, task_pb2.TaskDefinition())
        return TaskRecord(wire.definition_from_pb(message, "task"), enabled != "0", _dt(generation))

    async def get_task(self, name: str) -> TaskRecord | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self.key("tasks"), name)
            pipe.hget(self.key("enabled"), name)
            pipe.hget(self.key("generations"), name)
            encoded, enabled, generation = await pipe.execute()
        return self._task(encoded, enabled, generation) if encoded else None

    async def list_tasks(self) -> list[TaskRecord]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.key("tasks"))
            pipe.hgetall(self.key("enabled"))
            pipe.hgetall(self.key("generations"))
            definitions, enabled, generations = await pipe.execute()
        return [
            self._task(definitions[name], enabled.get(name), generations.get(name))
            for name in sorted(definitions)
        ]

    async def set_task_enabled(self, name: str, enabled: bool) -> TaskRecord | None:
        if not await self.redis.hexists(self.key("tasks"), name):
            return None
        await self.redis.hset(self.key("enabled"), name, "1" if enabled else "0")
        if enabled:
            await self.redis.publish(self.key("signals"), "work")
        return await self.get_task(name)

    async def queue_depths(self) -> Mapping[TaskPriority, int]:
        depths = await self.redis.hgetall(self.key("depth"))
        return {priority: int(depths.get(priority.value, 0)) for priority in TaskPriority}

    async def worker_loads(self) -> Mapping[str, int]:
        loads = await self.redis.hgetall(self.key("worker-load"))
        return {worker_id: int(count) for worker_id, count in loads.items() if int(count)}

    async def running_counts(self) -> Mapping[str, int]:
        names = sorted(await self.redis.hkeys(self.key("tasks")))
        if not names:
            return {}
        counts = await self.redis.mget([self.key("running", name) for name in names])
        return {name: int(count) for name, count in zip(names, counts, strict=True) if count}

    # -- runs --------------------------------------------------------------------
    @staticmethod
    def _write_values(run: Run, *head: str) -> list[str]:
        """What a writing script needs of ``run`` after ``head``."""
        fields = run_fields(run)
        end_ts = fields["end"] or fields["queued"] or "0"
        return [
            *head,
            json.dumps(fields),
            fields["state"],
            run.task,
            fields["execute_after"],
            fields["score"],
            end_ts,
        ]

    def _write_args(self, run: Run, *head: str) -> list[str]:
        return self._args(*self._write_values(run, *head))

    async def add_runs(
        self, runs: Sequence[tuple[Run, str]], max_queued: Mapping[str, int] | None = None
    ) -> list[tuple[Run, bool]]:
        limits = {task: most for task, most in (max_queued or {}).items() if most}
        limited = [value for task, most in limits.items() for value in (task, str(most))]
        if limits and not self._waiting_checked:
            if await self._rebuild_waiting(args=[self.prefix]):
                logger.info("rebuilt the counts of waiting runs per task (max_queued)")
            self._waiting_checked = True
        existing_ids: list[str] = []
        # A script call per chunk: one command instead of one per run, and no single call
        # holds Redis for long. A batch with a max_queued to honour is one call, so that
        # it is refused or taken whole (at most queue_batch_runs runs).
        chunk = len(runs) if limits else ADD_CHUNK
        for start in range(0, len(runs), max(chunk, 1)):
            values = [
                value
                for run, key in runs[start : start + chunk]
                for value in self._write_values(run, run.id, key)
            ]
            reply = await self._add(args=self._args(str(len(limits)), *limited, *values))
            if reply and reply[0] == "!full":
                raise queue_full(reply[1], int(reply[2]), limits[reply[1]])
            existing_ids.extend(reply)
        added: list[tuple[Run, bool]] = []
        for (run, key), existing_id in zip(runs, existing_ids, strict=True):
            if not existing_id:
                added.append((run, True))
                continue
            existing = await self.get_run(existing_id)
            if existing is None:  # purged between the script and this read: queue it again
                added.append(await self.add_run(run, key, limits.get(run.task, 0)))
            else:
                added.append((existing, False))
        return added

    async def get_run(self, run_id: str) -> Run | None:
        fields = await self.redis.hgetall(self.key("run", run_id))
        return run_from_fields(fields) if fields else None

    async def read_runs(self, run_ids: Sequence[str]) -> dict[str, tuple[Run, Lease | None]]:
        return {
            run_id: (run_from_fields(fields), lease_from_fields(fields))
            for run_id, fields in zip(run_ids, await self._runs(run_ids), strict=True)
            if fields
        }

    async def write_runs(self, runs: Sequence[Run]) -> list[bool]:
        applied = await self._apply_all(
            [self._write_args(run, run.id, str(run.version - 1)) for run in runs]
        )
        return [bool(ok) for ok in applied]

    async def _apply_all(self, writes: list[list[str]]) -> list[int]:
        if len(writes) <= 1:
            # A pipelined script costs an extra SCRIPT EXISTS round trip: not for one run.
            return [await self._apply(args=args) for args in writes]
        async with self.redis.pipeline(transaction=False) as pipe:
            for args in writes:
                await self._apply(args=args, client=pipe)
            applied: list[int] = await pipe.execute()
        return applied

    async def _runs(self, run_ids: Sequence[str]) -> list[dict[str, str]]:
        if len(run_ids) == 1:
            return [await self.redis.hgetall(self.key("run", run_ids[0]))]
        async with self.redis.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.hgetall(self.key("run", run_id))
            found: list[dict[str, str]] = await pipe.execute()
        return found

    async def lease_runs(
        self,
        worker: WorkerRecord,
        tasks: Collection[TaskRecord],
        max_runs: int,
        now: datetime,
        lease_ttl: timedelta,
    ) -> LeaseBatch:
        per_task = [
            value for task in tasks for value in (task.name, str(task.definition.max_concurrency))
        ]
        leased_replies, blocked_triples, next_due = await self._lease(
            args=self._args(
                worker.worker_id,
                _ts(now),
                _ts(now + lease_ttl),
                str(max_runs),
                _ts(now - BLOCKED_RECOVERY),
                str(len(tasks)),
                *per_task,
            )
        )
        by_name = {task.name: task for task in tasks}
        blocked = [
            Blocked(run_id, replace(by_name[task], enabled=enabled == "1"))
            for run_id, task, enabled in zip(
                blocked_triples[::3], blocked_triples[1::3], blocked_triples[2::3], strict=True
            )
        ]
        # Remembered so a long poll wakes up for the next delayed run without asking Redis.
        self._next_due = float(next_due) if next_due else None
        leased = []
        for reply in leased_replies:
            fields = dict(zip(reply[::2], reply[1::2], strict=True))
            lease = lease_from_fields(fields)
            assert lease is not None, "the lease script leases what it returns"
            leased.append((run_from_fields(fields), lease))
        return LeaseBatch(leased, blocked)

    async def work_ticket(self) -> WorkTicket:
        await self._ensure_listener()
        return self._work.ticket()

    async def wait_for_work(self, ticket: WorkTicket, timeout: float) -> None:
        # A run delayed after the last lease call publishes "work", which wakes this wait
        # so the next lease call learns its due time.
        if self._next_due is not None:
            timeout = min(timeout, self._next_due - datetime.now(UTC).timestamp())
        await Signal.wait(ticket, timeout)

    async def extend_leases(
        self,
        worker_id: str,
        run_ids: Sequence[str],
        deadline: Callable[[Run], datetime],
        now: datetime,
    ) -> HeartbeatReply:
        await self.redis.hset(self.key("worker", worker_id), "last_seen", _ts(now))
        held = {
            fields["id"]: fields
            for fields in await self._runs(run_ids)
            if fields and fields.get("lease_worker") == worker_id
        }
        pairs = [
            value
            for run_id, fields in held.items()
            for value in (run_id, _ts(deadline(run_from_fields(fields))))
        ]
        renewed = set(await self._renew(args=self._args(worker_id, *pairs))) if pairs else set()
        aborts = {
            run_id: held[run_id]["abort"]
            for run_id in renewed
            if held[run_id].get("abort") is not None
        }
        return HeartbeatReply(
            aborts=aborts, lost=[run_id for run_id in run_ids if run_id not in renewed]
        )

    async def request_abort(self, run_id: str, reason: str) -> bool:
        return bool(await self._request_abort(args=self._args(run_id, reason)))

    async def expired_leases(self, now: datetime, limit: int) -> list[Lease]:
        ids = await self.redis.zrangebyscore(self.key("leases"), "-inf", _ts(now), 0, limit)
        leases = [lease_from_fields(fields) for fields in await self._runs(ids) if fields]
        return [lease for lease in leases if lease is not None]

    async def announce(self, runs: Sequence[tuple[str, str]]) -> None:
        if not runs:
            return
        self._announcements += 1
        async with self.redis.pipeline(transaction=False) as pipe:
            for task, run_id in runs:
                pipe.rpush(self.key("announced", task), run_id)
            for task in {task for task, _ in runs}:
                pipe.ltrim(self.key("announced", task), -MAX_ANNOUNCED_PER_TASK, -1)
            pipe.publish(self.key("signals"), "announced")
            await pipe.execute()

    async def take_announced(self, task_names: Sequence[str], limit: int) -> list[str]:
        heard = self._announcements
        if self._subscribed:
            task_names = [task for task in task_names if self._found_empty.get(task) != heard]
        if limit <= 0 or not task_names:
            return []
        # One round trip whatever the number of tasks: each list gives up to ``limit``,
        # and what is over the limit goes back to the head of its list, in order.
        async with self.redis.pipeline(transaction=False) as pipe:
            for task in task_names:
                pipe.lpop(self.key("announced", task), limit)
            popped: list[list[str] | None] = await pipe.execute()
        if len(self._found_empty) > MAX_EMPTY_REMEMBERED:  # tasks come and go
            self._found_empty.clear()
        taken: list[str] = []
        extra: list[tuple[str, list[str]]] = []
        for task, ids in zip(task_names, popped, strict=True):
            if not ids:
                self._found_empty[task] = heard
            room = limit - len(taken)
            taken.extend((ids or [])[:room])
            if ids and len(ids) > room:
                extra.append((task, ids[room:]))
        if extra:
            async with self.redis.pipeline(transaction=False) as pipe:
                for task, ids in extra:
                    pipe.lpush(self.key("announced", task), *reversed(ids))
                await pipe.execute()
        return taken

    async def purge_finished(self, older_than: datetime, limit: int) -> int:
        purged: int = await self._purge(args=self._args(_ts(older_than), str(limit)))
        return purged

    async def watch_changes(self) -> AsyncIterator[Run]:
        """Every run's channel through one pattern subscription, made by the first stream
        and kept (each change then reaches this store twice, once per kind of reader);
        changes published before it is in place are not seen."""
        await self._ensure_listener()
        queue = self._feed.add()
        try:
            if not self._watching_every_change:
                self._watching_every_change = True
                try:
                    # Shielded: a stream cancelled mid-command (its caller's deadline)
                    # must not leave the shared subscription's connection half-written.
                    await asyncio.shield(self._pubsub.psubscribe(self._every_change))
                except RedisError as error:
                    self._watching_every_change = False
                    raise (store_error(error) or error) from error
            async for run in drain(queue):
                yield run
        finally:
            self._feed.remove(queue)

    async def watch(self, run_id: str) -> AsyncIterator[Run]:
        """Snapshots arrive on the run's channel; a watcher subscribes before reading the
        run, so no change between the read and the first message is lost."""
        await self._ensure_listener()
        queue: asyncio.Queue[Run | None] = asyncio.Queue()
        first = run_id not in self._watchers
        self._watchers.setdefault(run_id, set()).add(queue)
        try:
            if first:
                try:
                    await self._pubsub.subscribe(self._changes(run_id))
                except RedisError as error:
                    raise (store_error(error) or error) from error
            run = await self.get_run(run_id)
            if run is None:
                return

            async def update() -> Run | None:
                latest = await queue.get()
                # None: changes may have been missed, the run as stored stands for them.
                return latest if latest is not None else await self.get_run(run_id)

            async with contextlib.aclosing(newer_versions(run, update)) as versions:
                async for version in versions:
                    yield version
        finally:
            queues = self._watchers.get(run_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._watchers[run_id]
                    with contextlib.suppress(Exception):
                        await self._pubsub.unsubscribe(self._changes(run_id))

    # -- outbox to history -------------------------------------------------------
    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.key("outbox"), OUTBOX_GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._group_ready = True

    async def read_outbox(self, limit: int, wait: float = 0.0) -> list[OutboxEntry]:
        """This consumer's unacknowledged entries first (every read, so nothing read is
        ever skipped), then now and then those of consumers that died, then new ones."""
        await self._ensure_group()
        stream = self.key("outbox")
        found = await self.redis.xreadgroup(
            OUTBOX_GROUP, self._consumer, {stream: "0"}, count=limit
        )
        entries: list[tuple[str, dict[str, str]]] = found[0][1] if found else []
        if not entries and time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + OUTBOX_CLAIM_IDLE_MS / 1000
            claimed = await self.redis.xautoclaim(
                stream, OUTBOX_GROUP, self._consumer, OUTBOX_CLAIM_IDLE_MS, "0-0", count=limit
            )
            entries = [entry for entry in claimed[1] if entry[1]]
        if not entries:
            block = {"block": max(int(wait * 1000), 1)} if wait > 0 else {}
            found = await self.redis.xreadgroup(
                OUTBOX_GROUP, self._consumer, {stream: ">"}, count=limit, **block
            )
            entries = found[0][1] if found else []
        return [_outbox_entry(entry_id, fields) for entry_id, fields in entries]

    async def outbox_size(self) -> int:
        # Acknowledged entries are deleted, so the stream holds only undelivered ones.
        size: int = await self.redis.xlen(self.key("outbox"))
        return size

    async def ack_outbox(self, entries: Sequence[OutboxEntry]) -> None:
        if not entries:
            return
        ids = [entry.entry_id for entry in entries]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.key("outbox"), OUTBOX_GROUP, *ids)
            pipe.xdel(self.key("outbox"), *ids)
            await pipe.execute()

    # -- dead letters --------------------------------------------------------------
    async def add_dead_letters(
        self, refused: Sequence[tuple[OutboxEntry, str]], now: datetime
    ) -> None:
        if not refused:
            return
        outbox = self.key("outbox")
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry, _ in refused:
                pipe.xrange(outbox, entry.entry_id, entry.entry_id)
            found = await pipe.execute()
        async with self.redis.pipeline(transaction=True) as pipe:
            for (entry, reason), stored in zip(refused, found, strict=True):
                if not stored:
                    continue  # another consumer claimed and settled it meanwhile
                snapshot = stored[0][1].get("snapshot", "")
                fields = _snapshot_fields(snapshot)
                pipe.xadd(
                    self.key("dead"),
                    {
                        "run_id": entry.run_id,
                        "task": fields.get("task", ""),
                        "state": fields.get("state", TaskState.init.value),
                        "version": str(entry.version),
                        "reason": reason,
                        "time": _ts(now),
                        "size": str(len(snapshot.encode())),
                        "snapshot": snapshot,
                    },
                    maxlen=MAX_DEAD_LETTERS,
                    approximate=True,
                )
            ids = [entry.entry_id for entry, _ in refused]
            pipe.xack(outbox, OUTBOX_GROUP, *ids)
            pipe.xdel(outbox, *ids)
            await pipe.execute()

    async def dead_letters(self, limit: int, after: str = "") -> list[DeadLetter]:
        start = f"({after}" if after else "-"
        entries = await self.redis.xrange(self.key("dead"), start, "+", count=limit)
        return [_dead_letter(entry_id, fields) for entry_id, fields in entries]

    async def dead_letter_summary(self) -> tuple[int, datetime | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self.key("dead"))
            pipe.xrange(self.key("dead"), "-", "+", count=1)
            count, oldest = await pipe.execute()
        return count, _dt(oldest[0][1].get("time")) if oldest else None

    async def _dead_entries(
        self, ids: Sequence[str] | None
    ) -> AsyncIterator[list[tuple[str, dict[str, str]]]]:
        """The chosen dead letters in chunks (all of them when ``ids`` is None)."""
        dead = self.key("dead")
        if ids is not None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for letter_id in ids:
                    pipe.xrange(dead, letter_id, letter_id)
                found = await pipe.execute()
            yield [entry for entries in found for entry in entries]
            return
        start = "-"
        for _ in range(MAX_DEAD_LETTERS // ADD_CHUNK + 1):
            chunk = await self.redis.xrange(dead, start, "+", count=ADD_CHUNK)
            if not chunk:
                return
            yield chunk
            start = f"({chunk[-1][0]}"

    async def retry_dead_letters(self, ids: Sequence[str] | None) -> int:
        retried = 0
        async for chunk in self._dead_entries(ids):
            # A letter without a snapshot has nothing to send again: it stays, saying
            # what was lost, until it is dropped.
            sendable = [(entry_id, fields) for entry_id, fields in chunk if fields.get("snapshot")]
            if not sendable:
                continue
            async with self.redis.pipeline(transaction=True) as pipe:
                for _, fields in sendable:
                    pipe.xadd(
                        self.key("outbox"), {"id": fields["run_id"], "snapshot": fields["snapshot"]}
                    )
                pipe.xdel(self.key("dead"), *(entry_id for entry_id, _ in sendable))
                await pipe.execute()
            retried += len(sendable)
        return retried

    async def drop_dead_letters(self, ids: Sequence[str] | None) -> int:
        dropped = 0
        async for chunk in self._dead_entries(ids):
            if chunk:
                dropped += await self.redis.xdel(
                    self.key("dead"), *(entry_id for entry_id, _ in chunk)
                )
        return dropped

    async def delete_namespace(self) -> None:
        """Remove every key of this namespace (tests and resets)."""
        async for key in self.redis.scan_iter(match=self.prefix + "*", count=1000):
            await self.redis.delete(key)


def _unreadable(problem: str) -> Run:
    raise ValueError(problem)


def _snapshot_fields(snapshot: str) -> dict[str, Any]:
    try:
        fields = json.loads(snapshot)
    except ValueError:
        return {}
    return fields if isinstance(fields, dict) else {}


def _dead_letter(entry_id: str, fields: Mapping[str, str]) -> DeadLetter:
    when = _dt(fields.get("time"))
    return DeadLetter(
        id=entry_id,
        run_id=fields.get("run_id", ""),
        task=fields.get("task", ""),
        state=TaskState(fields.get("state") or TaskState.init.value),
        version=int(fields.get("version") or 0),
        reason=fields.get("reason", ""),
        time=when or datetime.fromtimestamp(0, UTC),
        size_bytes=int(fields.get("size") or 0),
    )
