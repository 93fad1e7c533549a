"""Domain rules without a database or gRPC: cursors, queries, which snapshots are kept."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from fluid.scheduler.errors import InvalidArgumentError
from fluid.scheduler.limits import PAGE_DEFAULT, PAGE_MAX
from fluid.scheduler.run import newest_first_per_run
from fluid_history.domain import (
    Cursor,
    RecordResult,
    RefusedSnapshot,
    RunQuery,
)
from fluid_history.domain.snapshots import refuse_invalid, storable

from .support import T0, MakeRun


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_cursor_round_trips_and_is_url_safe() -> None:
    cursor = Cursor(queued=T0, run_id="ab/c+d?")
    encoded = cursor.encode()
    assert Cursor.decode(encoded) == cursor
    assert set(encoded) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_cursor_is_normalised_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    cursor = Cursor.decode(Cursor(queued=T0.astimezone(paris), run_id="r").encode())
    assert cursor.queued == T0
    assert cursor.queued.tzinfo == UTC


@pytest.mark.parametrize(
    "text",
    [
        "not base64!",
        _b64("not json"),
        _b64("[1, 2]"),
        _b64('{"q": "2025-01-01T00:00:00+00:00"}'),
        _b64('{"q": "2025-01-01T00:00:00+00:00", "id": ""}'),
        _b64('{"q": 12, "id": "r"}'),
        _b64('{"q": "yesterday", "id": "r"}'),
        _b64('{"q": "2025-01-01T00:00:00", "id": "r"}'),
    ],
)
def test_malformed_cursor_is_invalid_argument(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^cursor: malformed$"):
        Cursor.decode(text)


def test_query_limit_defaults_and_bounds() -> None:
    assert RunQuery().limit == PAGE_DEFAULT
    assert RunQuery(limit=0).limit == PAGE_DEFAULT
    assert RunQuery(limit=PAGE_MAX).limit == PAGE_MAX
    with pytest.raises(InvalidArgumentError, match=r"^limit: at most 500$"):
        RunQuery(limit=PAGE_MAX + 1)
    with pytest.raises(InvalidArgumentError, match=r"^limit: "):
        RunQuery(limit=-1)


def test_query_refuses_an_empty_time_range() -> None:
    RunQuery(queued_after=T0, queued_before=T0 + timedelta(microseconds=1))
    for before in (T0, T0 - timedelta(seconds=1)):
        with pytest.raises(InvalidArgumentError, match=r"^queued_after: "):
            RunQuery(queued_after=T0, queued_before=before)


def test_query_refuses_naive_times() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^queued_before: "):
        RunQuery(queued_before=datetime(2025, 1, 1))


def test_each_runs_snapshots_come_newest_first(make_run: MakeRun) -> None:
    batch = [
        make_run("a", version=2, reason="a2"),
        make_run("b", version=1),
        make_run("a", version=5, reason="a5"),
        make_run("a", version=3, reason="a3"),
        make_run("a", version=5, reason="a5 again"),
    ]
    per_run = newest_first_per_run(batch, lambda run: run.id, lambda run: run.version)
    assert {run_id: [run.reason for run in runs] for run_id, runs in per_run.items()} == {
        # On a tie the first seen comes first.
        "a": ["a5", "a5 again", "a3", "a2"],
        "b": [""],
    }


def test_invalid_snapshots_are_refused_naming_the_field(make_run: MakeRun) -> None:
    valid, refused = refuse_invalid(
        [make_run("a"), make_run("", version=3), make_run("b", task=""), make_run("c")]
    )
    assert [run.id for run in valid] == ["a", "c"]
    assert refused == [
        RefusedSnapshot(run_id="", version=3, reason="id: required"),
        RefusedSnapshot(run_id="b", version=1, reason="task: required"),
    ]


def test_record_results_add_up_in_order(make_run: MakeRun) -> None:
    first = RecordResult(applied=(make_run("a"),), refused=(RefusedSnapshot("x", 1, "why"),))
    second = RecordResult(applied=(make_run("b"),), refused=(RefusedSnapshot("y", 2, "why"),))
    total = first + second
    assert [run.id for run in total.applied] == ["a", "b"]
    assert [refusal.run_id for refusal in total.refused] == ["x", "y"]


def test_storable_drops_skip_db_and_fills_queued(make_run: MakeRun) -> None:
    now = T0 + timedelta(hours=1)
    started = T0 + timedelta(minutes=1)
    kept = storable(
        [
            make_run("secret", tags=frozenset({"skip_db", "x"})),
            make_run("started", queued=None, start=started),
            make_run("bare", queued=None),
            make_run("normal"),
        ],
        now,
    )
    assert {run.id: run.queued for run in kept} == {
        "started": started,
        "bare": now,
        "normal": T0,
    }


def test_cursor_after_a_run(make_run: MakeRun) -> None:
    assert Cursor.after(make_run("r")) == Cursor(queued=T0, run_id="r")
    # Decoding yields exactly the JSON document the brief specifies.
    encoded = Cursor.after(make_run("r")).encode()
    document = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    assert document == {"q": T0.isoformat(), "id": "r"}
