"""`make bench-history`: history on PostgreSQL, ingest throughput and page latency.

Works in its own schema (``fluid_bench``, dropped first and last) of the database at
FLUID_BENCH_DATABASE_URL (default: the local ``test`` database). Prints:

- ingest through the store's batched upsert: BENCH_EVENTS snapshots (default 60,000) in
  batches of 500 shaped like the dispatcher's: a third new runs, two thirds later states
  of runs already stored;
- the same through gRPC RecordRuns into a `fluid serve history` process;
- p50/p99 of 200 filtered first pages (limit 50) over BENCH_STORED_RUNS stored runs
  (default 1,000,000, generated server-side with generate_series), through the store and
  through gRPC, for several filter shapes.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from fluid.scheduler import Client, TaskState, wire
from fluid.scheduler.run import Run
from fluid.scheduler.v1 import history_pb2, history_pb2_grpc
from fluid.service.channel import open_channel
from fluid_history.domain.query import RunQuery
from fluid_history.store import migrate
from fluid_history.store.engine import in_schema, open_engine
from fluid_history.store.sql import SqlRunStore

SCHEMA = "fluid_bench"
SERVER = make_url(
    os.environ.get("FLUID_BENCH_DATABASE_URL")
    or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
EVENTS = int(os.environ.get("BENCH_EVENTS", "60000"))
STORED_RUNS = int(os.environ.get("BENCH_STORED_RUNS", "1000000"))
QUERIES = 200
BATCH = 500
TASKS = 20
USERS = 5000
NOW = datetime(2026, 11, 1, tzinfo=UTC)

# Every stored run gets a task, a state, a queued time (spread over 29 days, four runs
# sharing each), params and a tag that the query shapes filter on. States: 90% success,
# 7% failure, 1% aborted, 2% running.
GENERATE_RUNS = f"""
INSERT INTO runs (id, task, priority, state, queued, start, "end", execute_after, attempt,
                  rate_limit_attempt, from_run_id, root_run_id, params, result, error_type,
                  error_message, error_traceback, reason, tags, trace_context, worker_id,
                  version)
SELECT 'bench-' || lpad(n::text, 8, '0'),
       'task_' || (n % {TASKS}),
       (ARRAY['high', 'medium', 'low'])[1 + n % 3],
       CASE WHEN s < 90 THEN 'success' WHEN s < 97 THEN 'failure'
            WHEN s < 98 THEN 'aborted' ELSE 'running' END,
       queued, queued + interval '1 second', queued + interval '2 seconds', NULL, 0, 0,
       '', '', jsonb_build_object('user', n % {USERS}, 'region',
                                  (ARRAY['eu', 'us', 'ap'])[1 + n % 3], 'size', n % 97),
       to_jsonb(n), NULL, NULL, NULL, '', jsonb_build_array('t' || (n % 10)), '{{}}'::jsonb,
       'w-' || (n % 8), 3
FROM generate_series(1, :count) AS n,
     LATERAL (SELECT timestamptz '{NOW.isoformat()}' - (n / 4) * interval '10 seconds' AS queued,
                     -- independent of the task and the user, which derive from n % {USERS}
                     (n + n / {USERS}) % 100 AS s) AS t
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def reset_schema(*, create: bool) -> None:
    engine = create_async_engine(SERVER, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            if create:
                await connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    finally:
        await engine.dispose()


def snapshot(n: int, version: int) -> Run:
    queued = NOW + timedelta(milliseconds=n)
    state = {1: TaskState.queued, 2: TaskState.running, 3: TaskState.success}[version]
    return Run(
        id=f"ingest-{n:08}",
        task=f"task_{n % TASKS}",
        state=state,
        params={"user": n % USERS, "region": "eu"},
        queued=queued,
        start=queued + timedelta(seconds=1) if version > 1 else None,
        end=queued + timedelta(seconds=2) if version > 2 else None,
        result=n if version > 2 else None,
        tags=frozenset({f"t{n % 10}"}),
        trace_context={"traceparent": f"00-{n:032x}-{n:016x}-01"},
        worker_id="w-1" if version > 1 else "",
        version=version,
    )


def dispatcher_batches(events: int, first_run: int) -> Iterator[list[Run]]:
    """Batches as an outbox yields them: new runs, and later states of earlier runs."""
    per_block = BATCH // 3
    blocks = events // BATCH
    for block in range(blocks + 2):

        def runs(of_block: int) -> range:
            if not 0 <= of_block < blocks:
                return range(0)
            start = first_run + of_block * per_block
            return range(start, start + per_block)

        batch = [snapshot(n, 1) for n in runs(block)]
        batch += [snapshot(n, 2) for n in runs(block - 1)]
        batch += [snapshot(n, 3) for n in runs(block - 2)]
        yield batch


async def ingest_through_store(store: SqlRunStore) -> tuple[int, float]:
    batches = list(dispatcher_batches(EVENTS, first_run=0))
    started = time.perf_counter()
    for batch in batches:
        await store.record(batch)
    return sum(map(len, batches)), time.perf_counter() - started


async def ingest_through_grpc(address: str) -> tuple[int, float]:
    requests = [
        history_pb2.RecordRunsRequest(runs=[wire.run_to_pb(run) for run in batch])
        for batch in dispatcher_batches(EVENTS, first_run=10_000_000)
    ]
    async with open_channel(address) as channel:
        stub = history_pb2_grpc.HistoryServiceStub(channel)
        started = time.perf_counter()
        # One call at a time, as the dispatcher's forwarder sends them.
        for request in requests:
            await stub.RecordRuns(request, timeout=30)
        return sum(len(request.runs) for request in requests), time.perf_counter() - started


QueryShape = Callable[[random.Random], dict[str, Any]]


def task_and_state(rng: random.Random) -> dict[str, Any]:
    state = rng.choice([TaskState.success, TaskState.failure])
    return {"task": f"task_{rng.randrange(TASKS)}", "states": frozenset({state})}


def task_state_and_params(rng: random.Random) -> dict[str, Any]:
    user = rng.randrange(USERS)
    # A user's runs all belong to one task (both derive from the same number).
    return {
        "task": f"task_{user % TASKS}",
        "states": frozenset({TaskState.success}),
        "params_contain": {"user": user},
    }


def params_only(rng: random.Random) -> dict[str, Any]:
    return {"params_contain": {"user": rng.randrange(USERS)}}


def common_params(rng: random.Random) -> dict[str, Any]:
    return {"params_contain": {"region": rng.choice(["eu", "us", "ap"])}}


def state_tag_and_last_day(rng: random.Random) -> dict[str, Any]:
    return {
        "states": frozenset({TaskState.failure}),
        "tags": frozenset({f"t{rng.randrange(10)}"}),
        "queued_after": NOW - timedelta(days=1),
    }


def rare_state(rng: random.Random) -> dict[str, Any]:
    return {"states": frozenset({rng.choice([TaskState.aborted, TaskState.running])})}


SHAPES: dict[str, QueryShape] = {
    "task + state": task_and_state,
    "rare state": rare_state,
    "task + state + params": task_state_and_params,
    "params only (rare value)": params_only,
    "params only (common)": common_params,
    "state + tag + last day": state_tag_and_last_day,
}


async def latencies(call: Callable[[dict[str, Any]], Awaitable[int]], shape: QueryShape) -> str:
    rng = random.Random(7)
    timings = []
    for _ in range(QUERIES):
        filters = shape(rng)
        started = time.perf_counter()
        found = await call(filters)
        timings.append((time.perf_counter() - started) * 1000)
        if not found:
            raise SystemExit(f"a benchmark query found nothing: {filters}")
    timings.sort()
    p99 = timings[int(len(timings) * 0.99) - 1]
    return f"p50 {statistics.median(timings):6.2f} ms   p99 {p99:6.2f} ms"


async def wait_serving(address: str) -> None:
    async with open_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(300):
            try:
                response = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"history did not start at {address}")


async def bench(url: URL, address: str) -> None:
    store = SqlRunStore(url)
    await store.open()
    try:
        print(f"history on PostgreSQL ({SERVER.render_as_string(hide_password=True)})")
        events, seconds = await ingest_through_store(store)
        print(f"  ingest, store upsert     {events / seconds:8.0f} events/s ({events} events)")
        await wait_serving(address)
        events, seconds = await ingest_through_grpc(address)
        print(f"  ingest, gRPC RecordRuns  {events / seconds:8.0f} events/s ({events} events)")

        engine = open_engine(url)
        started = time.perf_counter()
        async with engine.begin() as connection:
            await connection.execute(text(GENERATE_RUNS), {"count": STORED_RUNS})
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE runs"))
        await engine.dispose()
        print(f"  {STORED_RUNS} runs generated in {time.perf_counter() - started:.1f} s")

        async def through_store(filters: dict[str, Any]) -> int:
            return len((await store.list_runs(RunQuery(limit=50, **filters))).runs)

        async with Client(address) as client:

            async def through_grpc(filters: dict[str, Any]) -> int:
                page = await client.list_runs(
                    task=filters.get("task", ""),
                    state=filters.get("states", ()),
                    start=filters.get("queued_after"),
                    params=filters.get("params_contain"),
                    tags=filters.get("tags", ()),
                    limit=50,
                )
                return len(page.runs)

            print(f"  first page (limit 50) of {QUERIES} filtered queries:")
            for name, shape in SHAPES.items():
                print(f"    {name:26} store {await latencies(through_store, shape)}")
                print(f"    {'':26} gRPC  {await latencies(through_grpc, shape)}")
    finally:
        await store.close()


async def run() -> None:
    url = in_schema(SERVER, SCHEMA)
    await reset_schema(create=True)
    history = None
    try:
        engine = open_engine(url)
        await migrate.upgrade(engine)
        await engine.dispose()
        port = free_port()
        env = {
            **os.environ,
            "FLUID_DATABASE_URL": url.render_as_string(hide_password=False),
            "FLUID_PORT": str(port),
            "FLUID_LOG_LEVEL": "WARNING",
        }
        history = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fluid_cli", "serve", "history", env=env
        )
        await bench(url, f"127.0.0.1:{port}")
    finally:
        if history is not None:
            history.terminate()
            await history.wait()
        if not os.environ.get("BENCH_KEEP"):
            await reset_schema(create=False)


if __name__ == "__main__":
    asyncio.run(run())
