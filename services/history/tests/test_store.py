"""The run store contract: one suite, run against every store in conftest's STORE_URLS."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from fluid.scheduler.errors import InvalidArgumentError, NotFoundError, UnavailableError
from fluid.scheduler.models import RunError, TaskPriority, TaskState
from fluid.scheduler.run import Run
from fluid_history.domain import Cursor, RecordResult, RefusedSnapshot, RunHistory, RunQuery
from fluid_history.domain.retention import Retention
from fluid_history.store.sql import ROWS_PER_STATEMENT, SqlRunStore
from fluid_history.testing import PostgresSchema
from fluid_history.tracing import RecordSpans

from .support import T0, MakeRun, first_upsert_cut

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def _all_pages(store: SqlRunStore, query: RunQuery) -> list[Run]:
    """Every run the query matches, following cursors until the last page."""
    runs: list[Run] = []
    while True:
        page = await store.list_runs(query)
        runs.extend(page.runs)
        if page.next_cursor is None:
            return runs
        assert len(page.runs) == query.limit
        query = dataclasses.replace(query, after=page.next_cursor)


async def _ids(store: SqlRunStore, **filters: Any) -> list[str]:
    page = await store.list_runs(RunQuery(limit=500, **filters))
    return [run.id for run in page.runs]


async def _versions(store: SqlRunStore) -> dict[str, int]:
    return {run.id: run.version for run in await _all_pages(store, RunQuery(limit=500))}


# -- recording -------------------------------------------------------------------------


async def test_a_stored_run_reads_back_field_for_field(store: SqlRunStore) -> None:
    paris = timezone(timedelta(hours=1))
    run = Run(
        id="r1",
        task="resize",
        priority=TaskPriority.high,
        state=TaskState.failure,
        params={"path": "a.png", "size": [1, 2.5], "opts": {"fast": True, "q": None}},
        queued=T0.astimezone(paris),
        start=T0 + timedelta(seconds=1),
        end=T0 + timedelta(seconds=2),
        execute_after=T0 - timedelta(days=1),
        attempt=2,
        rate_limit_attempt=1,
        from_run_id="parent",
        root_run_id="root",
        result={"done": ["x", 1]},
        error=RunError(type="ValueError", message="bad", traceback="Traceback ..."),
        reason="because",
        tags=frozenset({"img", "slow"}),
        trace_context={"traceparent": TRACEPARENT},
        worker_id="w-7",
        version=2**40,
    )
    assert await store.record([run]) == RecordResult(applied=(run,))
    stored = await store.get_run("r1")
    assert stored == run
    assert stored is not None
    for when in (stored.queued, stored.start, stored.end, stored.execute_after):
        assert when is not None
        assert when.tzinfo == UTC


async def test_optional_fields_read_back_empty(store: SqlRunStore, make_run: MakeRun) -> None:
    run = make_run("bare")
    await store.record([run])
    stored = await store.get_run("bare")
    assert stored == run
    assert stored is not None
    assert (stored.result, stored.error, stored.start, stored.end) == (None, None, None, None)


async def test_an_unknown_run_is_none(store: SqlRunStore) -> None:
    assert await store.get_run("missing") is None


async def test_only_a_higher_version_changes_a_run(store: SqlRunStore, make_run: MakeRun) -> None:
    queued = make_run("r", state=TaskState.queued, version=1)
    running = make_run("r", state=TaskState.running, version=2)
    success = make_run("r", state=TaskState.success, version=3)

    assert (await store.record([running])).applied == (running,)
    # Out of order: the older snapshot arrives late and must not move the run back.
    assert await store.record([queued]) == RecordResult()
    # Replay of the stored version: nothing changes.
    assert await store.record([dataclasses.replace(running, reason="replayed")]) == RecordResult()
    assert await store.get_run("r") == running
    assert (await store.record([success])).applied == (success,)
    assert await store.record([queued, running, success]) == RecordResult()
    assert await store.get_run("r") == success


async def test_a_batch_keeps_the_highest_version_of_each_run(
    store: SqlRunStore, make_run: MakeRun
) -> None:
    batch = [
        make_run("a", version=3, state=TaskState.success),
        make_run("a", version=1, state=TaskState.queued),
        make_run("b", version=1),
        make_run("a", version=2, state=TaskState.running),
    ]
    applied = (await store.record(batch)).applied
    assert sorted((run.id, run.version) for run in applied) == [("a", 3), ("b", 1)]
    stored = await store.get_run("a")
    assert stored is not None
    assert stored.state is TaskState.success


async def test_a_batch_applies_only_its_new_snapshots(
    store: SqlRunStore, make_run: MakeRun
) -> None:
    await store.record([make_run("old", version=5)])
    result = await store.record([make_run("old", version=4), make_run("new", version=1)])
    assert [run.id for run in result.applied] == ["new"]


async def test_a_row_the_store_refuses_is_refused_alone(
    store: SqlRunStore, make_run: MakeRun
) -> None:
    # Bad rows in the first and last statement's worth of rows (SQLite's pages): each is
    # found and refused, every other row is committed.
    batch = [make_run(f"r{index:04}") for index in range(ROWS_PER_STATEMENT + 10)]
    naive = datetime(2025, 1, 1)  # refused by the store on every database
    batch[3] = make_run("r0003", queued=naive, version=4)
    batch[-1] = make_run("~bad", queued=naive)
    result = await store.record(batch)
    assert len(result.applied) == len(batch) - 2
    assert [(refusal.run_id, refusal.version) for refusal in result.refused] == [
        ("r0003", 4),
        ("~bad", 1),
    ]
    for refusal in result.refused:
        assert refusal.reason.startswith(
            "the database refused this snapshot: refusing naive datetime"
        )
        # The statement and the batch's values stay out of the reason.
        assert "INSERT" not in refusal.reason
    assert len(await _versions(store)) == len(batch) - 2
    assert await store.get_run("~bad") is None


async def test_an_older_snapshot_stands_in_for_a_refused_newer_one(
    store: SqlRunStore, make_run: MakeRun
) -> None:
    naive = datetime(2025, 1, 1)
    await store.record([make_run("stored", version=3)])
    batch = [
        make_run("a", version=1, state=TaskState.queued),
        make_run("a", version=3, queued=naive),
        make_run("a", version=2, state=TaskState.running),
        # Refused, and its stand-in is older than the stored version: nothing regresses.
        make_run("stored", version=4, queued=naive),
        make_run("stored", version=2),
    ]
    result = await store.record(batch)
    assert [(run.id, run.version) for run in result.applied] == [("a", 2)]
    assert [(refusal.run_id, refusal.version) for refusal in result.refused] == [
        ("a", 3),
        ("stored", 4),
    ]
    running = await store.get_run("a")
    assert running is not None
    assert running.state is TaskState.running
    assert await _versions(store) == {"a": 2, "stored": 3}
    # The same batch again changes nothing and refuses the same snapshots.
    again = await store.record(batch)
    assert (again.applied, again.refused) == ((), result.refused)


@pytest.mark.parametrize(
    "fields",
    [
        {"result": {"text": "a\x00b"}},
        {"params": {"key\x00": 1}},
        {"error": RunError(type="ValueError", message="a\x00b", traceback="")},
        {"output_tail": ("line\x00",)},
        {"reason": "\x00"},
    ],
    ids=["result", "params-key", "error-message", "output", "reason"],
)
async def test_a_nul_character_is_stored_where_the_database_can_hold_it(
    store: SqlRunStore, make_run: MakeRun, fields: dict[str, Any]
) -> None:
    nul = make_run("nul", **fields)
    batch = [make_run("a"), nul, make_run("z")]
    result = await store.record(batch)
    if store.dialect == "postgresql":
        # JSONB refuses \u0000, text columns refuse NUL: only that snapshot is refused.
        assert [run.id for run in result.applied] == ["a", "z"]
        assert [(refusal.run_id, refusal.version) for refusal in result.refused] == [("nul", 1)]
        assert result.refused[0].reason.startswith("the database refused this snapshot: ")
        assert await store.get_run("nul") is None
    else:
        # SQLite keeps text with NUL characters whole.
        assert [run.id for run in result.applied] == ["a", "nul", "z"]
        assert result.refused == ()
        assert await store.get_run("nul") == nul
    assert set(await _versions(store)) == {run.id for run in result.applied}


async def test_an_error_of_the_statement_refuses_no_row(
    postgres: PostgresSchema, make_run: MakeRun
) -> None:
    store = SqlRunStore(postgres.url)
    await store.open()
    try:
        await postgres.admin.execute(text(f'DROP TABLE "{postgres.name}".runs'))
        # Every row would share the failure: the batch fails instead of being refused.
        with pytest.raises(ProgrammingError):
            await store.record([make_run("a"), make_run("b")])
    finally:
        await store.close()


async def test_a_large_batch_is_stored_whole(store: SqlRunStore, make_run: MakeRun) -> None:
    batch = [make_run(f"r{index:04}") for index in range(ROWS_PER_STATEMENT * 2 + 1)]
    assert len((await store.record(batch)).applied) == len(batch)
    assert len(await _all_pages(store, RunQuery(limit=500))) == len(batch)


# -- listing and filters ---------------------------------------------------------------


async def test_runs_are_listed_newest_queued_first_ties_by_id(
    store: SqlRunStore, make_run: MakeRun
) -> None:
    await store.record(
        [
            make_run("b", queued=T0),
            make_run("old", queued=T0 - timedelta(microseconds=1)),
            make_run("c", queued=T0),
            make_run("new", queued=T0 + timedelta(days=1)),
            make_run("a", queued=T0),
        ]
    )
    assert await _ids(store) == ["new", "c", "b", "a", "old"]


async def test_filter_by_task_and_states(store: SqlRunStore, make_run: MakeRun) -> None:
    await store.record(
        [
            make_run("add-ok", task="add", state=TaskState.success),
            make_run("add-ko", task="add", state=TaskState.failure),
            make_run("add-run", task="add", state=TaskState.running),
            make_run("mul-ok", task="mul", state=TaskState.success),
        ]
    )
    assert set(await _ids(store, task="add")) == {"add-ok", "add-ko", "add-run"}
    assert set(await _ids(store, states=frozenset({TaskState.success}))) == {"add-ok", "mul-ok"}
    done = frozenset({TaskState.success, TaskState.failure})
    assert set(await _ids(store, task="add", states=done)) == {"add-ok", "add-ko"}
    assert await _ids(store, task="nope") == []


async def test_filter_by_queued_range(store: SqlRunStore, make_run: MakeRun) -> None:
    hour = timedelta(hours=1)
    await store.record([make_run(f"h{n}", queued=T0 + n * hour) for n in range(5)])
    assert await _ids(store, queued_after=T0 + hour) == ["h4", "h3", "h2", "h1"]
    assert await _ids(store, queued_before=T0 + 2 * hour) == ["h1", "h0"]
    # After is inclusive, before exclusive: adjacent ranges share no run.
    assert await _ids(store, queued_after=T0 + hour, queued_before=T0 + 3 * hour) == ["h2", "h1"]
    paris = timezone(timedelta(hours=1))
    assert await _ids(store, queued_after=(T0 + 4 * hour).astimezone(paris)) == ["h4"]


async def test_filter_by_params_containment(store: SqlRunStore, make_run: MakeRun) -> None:
    await store.record(
        [
            make_run("one", params={"n": 1, "name": "x", "flag": True, "nested": {"a": 1}}),
            make_run("one-float", params={"n": 1.5, "name": "x"}),
            make_run("text", params={"n": "1", "name": "y", "flag": None}),
            make_run("truthy", params={"n": True, "list": [1, "a"]}),
            make_run("odd-key", params={'a.b "c"': 2}),
            make_run("empty", params={}),
        ]
    )

    async def matching(params: dict[str, object]) -> set[str]:
        return set(await _ids(store, params_contain=params))

    assert await matching({"n": 1}) == {"one"}
    assert await matching({"n": 1.0}) == {"one"}
    assert await matching({"n": 1.5}) == {"one-float"}
    assert await matching({"n": "1"}) == {"text"}
    assert await matching({"n": True}) == {"truthy"}
    assert await matching({"name": "x"}) == {"one", "one-float"}
    assert await matching({"name": "x", "n": 1}) == {"one"}
    assert await matching({"flag": True}) == {"one"}
    assert await matching({"flag": None}) == {"text"}
    assert await matching({"nested": {"a": 1}}) == {"one"}
    assert await matching({"nested": {"a": 2}}) == set()
    assert await matching({"list": [1, "a"]}) == {"truthy"}
    assert await matching({'a.b "c"': 2}) == {"odd-key"}
    assert await matching({"missing": 1}) == set()


async def test_nested_params_match_whatever_their_key_order(
    store: SqlRunStore, make_run: MakeRun
) -> None:
    await store.record([make_run("r", params={"cfg": {"b": 2, "a": {"y": 1, "x": 0}}})])
    assert await _ids(store, params_contain={"cfg": {"a": {"x": 0, "y": 1}, "b": 2}}) == ["r"]


async def test_filter_by_any_tag(store: SqlRunStore, make_run: MakeRun) -> None:
    await store.record(
        [
            make_run("red", tags=frozenset({"red"})),
            make_run("red-blue", tags=frozenset({"red", "blue"})),
            make_run("green", tags=frozenset({"green"})),
            make_run("untagged"),
        ]
    )
    assert set(await _ids(store, tags=frozenset({"red"}))) == {"red", "red-blue"}
    assert set(await _ids(store, tags=frozenset({"blue", "green"}))) == {"red-blue", "green"}
    assert await _ids(store, tags=frozenset({"nope"})) == []


async def test_filters_combine(store: SqlRunStore, make_run: MakeRun) -> None:
    later = T0 + timedelta(minutes=1)
    common = {"task": "add", "state": TaskState.success, "tags": frozenset({"t"})}
    await store.record(
        [
            make_run("match", params={"x": 1}, queued=later, **common),
            make_run("too-early", params={"x": 1}, **common),
            make_run("other-params", params={"x": 2}, queued=later, **common),
            make_run("other-task", params={"x": 1}, queued=later, **(common | {"task": "mul"})),
        ]
    )
    ids = await _ids(
        store,
        task="add",
        states=frozenset({TaskState.success}),
        queued_after=later,
        params_contain={"x": 1},
        tags=frozenset({"t"}),
    )
    assert ids == ["match"]


# -- pagination ------------------------------------------------------------------------


async def test_paging_through_runs_with_equal_queued_times_sees_each_once(
    store: SqlRunStore, make_run: MakeRun
) -> None:
    await store.record([make_run(f"r{index:04}") for index in range(1000)])
    runs = await _all_pages(store, RunQuery(limit=37))
    ids = [run.id for run in runs]
    assert len(ids) == 1000
    assert set(ids) == {f"r{index:04}" for index in range(1000)}
    assert ids == sorted(ids, reverse=True)


async def test_paging_mixes_times_and_filters(store: SqlRunStore, make_run: MakeRun) -> None:
    second = timedelta(seconds=1)
    await store.record(
        [
            make_run(f"r{index:03}", queued=T0 + (index % 7) * second, task=f"t{index % 2}")
            for index in range(300)
        ]
    )
    runs = await _all_pages(store, RunQuery(task="t1", limit=11))
    assert len(runs) == 150
    assert len({run.id for run in runs}) == 150
    keys = [(run.queued, run.id) for run in runs]
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize("few_matches", [0, 1000])
async def test_json_filtered_pages_do_not_depend_on_how_they_are_fetched(
    store: SqlRunStore, make_run: MakeRun, few_matches: int
) -> None:
    # PostgreSQL fetches few params matches whole and sorts them, many in page order.
    store.FEW_MATCHES = few_matches
    await store.record(
        [
            make_run(
                f"r{index:03}",
                queued=T0 + (index % 5) * timedelta(seconds=1),
                params={"even": index % 2 == 0},
                tags=frozenset({f"t{index % 3}"}),
            )
            for index in range(120)
        ]
    )
    runs = await _all_pages(
        store, RunQuery(params_contain={"even": True}, tags=frozenset({"t0", "t1"}), limit=7)
    )
    expected = [
        (T0 + (index % 5) * timedelta(seconds=1), f"r{index:03}")
        for index in range(120)
        if index % 2 == 0 and index % 3 != 2
    ]
    assert [(run.queued, run.id) for run in runs] == sorted(expected, reverse=True)


async def test_a_full_last_page_has_no_next_cursor(store: SqlRunStore, make_run: MakeRun) -> None:
    await store.record([make_run(f"r{index}") for index in range(4)])
    first = await store.list_runs(RunQuery(limit=2))
    assert first.next_cursor == Cursor(queued=T0, run_id="r2")
    last = await store.list_runs(RunQuery(limit=2, after=first.next_cursor))
    assert [run.id for run in last.runs] == ["r1", "r0"]
    assert last.next_cursor is None
    assert (await store.list_runs(RunQuery(limit=4))).next_cursor is None


async def test_an_empty_history_is_one_empty_page(store: SqlRunStore) -> None:
    page = await store.list_runs(RunQuery())
    assert (page.runs, page.next_cursor) == ([], None)


# -- the use cases on top of the store ---------------------------------------------------


async def test_skip_db_runs_are_not_stored(store: SqlRunStore, make_run: MakeRun) -> None:
    history = RunHistory(store)
    kept = make_run("kept")
    result = await history.record([kept, make_run("secret", tags=frozenset({"skip_db", "other"}))])
    assert result == RecordResult(applied=(kept,))
    assert await store.get_run("secret") is None
    hidden = make_run("secret2", tags=frozenset({"skip_db"}))
    assert await history.record([hidden]) == RecordResult()


async def test_history_applies_page_limits(store: SqlRunStore, make_run: MakeRun) -> None:
    history = RunHistory(store)
    await history.record([make_run(f"r{index:03}") for index in range(501)])
    assert len((await history.list_runs(RunQuery(limit=0))).runs) == 50
    assert len((await history.list_runs(RunQuery(limit=7))).runs) == 7
    page = await history.list_runs(RunQuery(limit=500))
    assert len(page.runs) == 500
    assert page.next_cursor is not None


async def test_history_counts_applied_snapshots(store: SqlRunStore, make_run: MakeRun) -> None:
    history = RunHistory(store)
    batch = [make_run("a", version=1), make_run("a", version=2), make_run("b")]
    assert len((await history.record(batch)).applied) == 2
    assert await history.record(batch) == RecordResult()


async def test_history_get_run(store: SqlRunStore, make_run: MakeRun) -> None:
    history = RunHistory(store)
    await history.record([make_run("r")])
    assert (await history.get_run("r")).id == "r"
    with pytest.raises(NotFoundError, match=r"^run nope not found$"):
        await history.get_run("nope")
    with pytest.raises(InvalidArgumentError, match=r"^run_id: "):
        await history.get_run("")


async def test_history_refuses_invalid_snapshots_alone(
    store: SqlRunStore, make_run: MakeRun, caplog: pytest.LogCaptureFixture
) -> None:
    history = RunHistory(store)
    unreadable = RefusedSnapshot(run_id="u", version=7, reason="state: unknown task state 99")
    kept = make_run("b")
    with caplog.at_level(logging.WARNING, logger="fluid.history"):
        result = await history.record(
            [make_run("", version=2), kept, make_run("c", task="")], unreadable=[unreadable]
        )
    assert result == RecordResult(
        applied=(kept,),
        refused=(
            unreadable,
            RefusedSnapshot(run_id="", version=2, reason="id: required"),
            RefusedSnapshot(run_id="c", version=1, reason="task: required"),
        ),
    )
    assert await _ids(store) == ["b"]
    # A refused snapshot is not sent again: the log keeps what history never stored.
    assert [record.getMessage() for record in caplog.records] == [
        "history refused run 'u' version 7: state: unknown task state 99",
        "history refused run '' version 2: id: required",
        "history refused run 'c' version 1: task: required",
    ]


async def test_history_stores_runs_without_queued_time(
    store: SqlRunStore, make_run: MakeRun
) -> None:
    now = T0 + timedelta(hours=2)
    history = RunHistory(store, clock=lambda: now)
    await history.record([make_run("r", queued=None)])
    stored = await store.get_run("r")
    assert stored is not None
    assert stored.queued == now


async def test_recording_joins_each_runs_trace(store: SqlRunStore, make_run: MakeRun) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    history = RunHistory(store, on_recorded=[RecordSpans(provider.get_tracer("test"))])
    traced = make_run("traced", state=TaskState.running, version=2)
    traced = dataclasses.replace(traced, trace_context={"traceparent": TRACEPARENT})

    await history.record([traced, make_run("untraced")])
    await history.record([dataclasses.replace(traced, version=1)])  # stale: no span

    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    span = spans[0]
    assert span.name == "history.record"
    assert span.context is not None
    assert format(span.context.trace_id, "032x") == TRACEPARENT.split("-")[1]
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == TRACEPARENT.split("-")[2]
    assert dict(span.attributes or {}) == {
        "fluid.run_id": "traced",
        "fluid.task": "add",
        "fluid.state": "running",
    }
    provider.shutdown()


# -- retention -------------------------------------------------------------------------


async def test_delete_queued_before_takes_the_oldest_first(
    store: SqlRunStore, make_run: MakeRun
) -> None:
    minute = timedelta(minutes=1)
    await store.record([make_run(f"old{n}", queued=T0 - (n + 1) * minute) for n in range(5)])
    await store.record([make_run("at-cutoff", queued=T0), make_run("new", queued=T0 + minute)])
    assert await store.delete_queued_before(T0, 2) == 2
    # The two oldest went first.
    assert set(await _ids(store)) == {"old0", "old1", "old2", "at-cutoff", "new"}
    assert await store.delete_queued_before(T0, 100) == 3
    assert await store.delete_queued_before(T0, 100) == 0
    assert set(await _ids(store)) == {"at-cutoff", "new"}


async def test_retention_purges_in_batches_until_none_is_left(
    store: SqlRunStore, make_run: MakeRun
) -> None:
    now = T0 + timedelta(days=30)
    await store.record([make_run(f"old{n:02}", queued=T0 + timedelta(hours=n)) for n in range(11)])
    await store.record([make_run("recent", queued=now - timedelta(days=6, hours=23))])
    retention = Retention(store, days=7, batch_size=3, interval=3600, clock=lambda: now)
    assert await retention.purge() == 11
    assert await _ids(store) == ["recent"]
    assert await retention.purge() == 0


class _PassesSeen:
    """A store whose deletes a test can wait for, one retention pass at a time."""

    def __init__(self, store: SqlRunStore) -> None:
        self._store = store
        self.passes: asyncio.Queue[int] = asyncio.Queue()

    async def delete_queued_before(self, cutoff: datetime, limit: int) -> int:
        deleted = await self._store.delete_queued_before(cutoff, limit)
        self.passes.put_nowait(deleted)
        return deleted


async def test_the_retention_loop_keeps_purging(store: SqlRunStore, make_run: MakeRun) -> None:
    clock = [T0]
    seen = _PassesSeen(store)
    retention = Retention(seen, days=1, batch_size=10, interval=0.01, clock=lambda: clock[0])
    await store.record([make_run("r", queued=T0)])
    loop = asyncio.create_task(retention.run())
    try:
        assert await seen.passes.get() == 0  # not a day old yet
        clock[0] = T0 + timedelta(days=1, seconds=1)
        while not await seen.passes.get():
            pass  # a pass may have read the clock before it moved
        assert await store.get_run("r") is None
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


def test_retention_needs_a_positive_number_of_days(store: SqlRunStore) -> None:
    with pytest.raises(ValueError, match="positive"):
        Retention(store, days=0, batch_size=1, interval=1)


# -- a database that goes away ----------------------------------------------------------


async def test_a_connection_lost_before_commit_is_unavailable_and_the_batch_retries(
    postgres: PostgresSchema, make_run: MakeRun
) -> None:
    store = SqlRunStore(postgres.url)
    await store.open()
    batch = [make_run(f"r{index:04}") for index in range(ROWS_PER_STATEMENT + 1)]
    try:
        async with first_upsert_cut(postgres.url) as cut:
            with pytest.raises(UnavailableError, match="history database"):
                await store.record(batch)
        assert cut
        assert await _ids(store) == []
        # The forwarder sends the same batch again; the pool replaced the dead connection.
        assert len((await store.record(batch)).applied) == len(batch)
    finally:
        await store.close()


async def test_connections_cut_while_idle_are_replaced(
    postgres: PostgresSchema, make_run: MakeRun
) -> None:
    store = SqlRunStore(postgres.url)
    await store.open()
    try:
        await store.record([make_run("before")])
        assert await postgres.terminate_connections() >= 1
        # pool_pre_ping notices the dead pooled connection and opens another.
        await store.record([make_run("after")])
        assert set(await _ids(store)) == {"before", "after"}
    finally:
        await store.close()


# -- lifecycle -------------------------------------------------------------------------


async def test_sqlite_directory_is_created(tmp_path: Path, make_run: MakeRun) -> None:
    database = tmp_path / "not" / "yet" / "history.db"
    store = SqlRunStore(f"sqlite+aiosqlite:///{database}")
    await store.open()
    try:
        await store.record([make_run("r")])
    finally:
        await store.close()
    assert database.is_file()
    reopened = SqlRunStore(f"sqlite+aiosqlite:///{database}")
    await reopened.open()
    try:
        assert await reopened.get_run("r") == make_run("r")
    finally:
        await reopened.close()


async def test_a_closed_store_is_unavailable(tmp_path: Path) -> None:
    store = SqlRunStore(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
    with pytest.raises(UnavailableError):
        await store.get_run("r")
    await store.open()
    await store.close()
    with pytest.raises(UnavailableError):
        await store.list_runs(RunQuery())


def test_an_unsupported_database_is_refused() -> None:
    with pytest.raises(ValueError, match="mysql"):
        SqlRunStore("mysql+aiomysql://localhost/history")
