"""Every encoding of a run carries every field of ``Run``: the wire message, the Redis
hash and the history row. A field added to ``Run`` and forgotten by one encoding fails
here, instead of being dropped silently on its way through the system."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fluid.scheduler import wire
from fluid.scheduler.models import RunError, TaskPriority, TaskState
from fluid.scheduler.run import Run
from fluid_dispatcher.store import redis_scripts
from fluid_dispatcher.store.redis import HASH_KEYS, run_fields, run_from_fields
from fluid_history.store.rows import row_from_run, run_from_row

T0 = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)

# A value unlike the default for every field, so that a field an encoding drops comes
# back as its default and the comparison fails.
NOT_DEFAULT: dict[str, Any] = {
    "id": "run-42",
    "task": "add",
    "priority": TaskPriority.high,
    "state": TaskState.failure,
    "params": {"a": 1, "nested": {"b": [1, "two", None, True]}},
    "queued": T0,
    "start": T0 + timedelta(seconds=1),
    "end": T0 + timedelta(seconds=2),
    "execute_after": T0 + timedelta(milliseconds=500),
    "attempt": 3,
    "rate_limit_attempt": 2,
    "from_run_id": "run-41",
    "root_run_id": "run-40",
    "result": {"total": 3},
    "error": RunError("ValueError", "bad", "Traceback ..."),
    "reason": "why not",
    "tags": frozenset({"billing", "nightly"}),
    "trace_context": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    "worker_id": "io-host-1",
    "version": 7,
    "output_tail": ("line 1", "line 2"),
}


def _wire(run: Run) -> Run:
    return wire.run_from_pb(wire.run_to_pb(run))


def _redis(run: Run) -> Run:
    return run_from_fields(run_fields(run))


def _history(run: Run) -> Run:
    return run_from_row(row_from_run(run))  # type: ignore[arg-type]  # a mapping is a row


CODECS: dict[str, Callable[[Run], Run]] = {
    "wire": _wire,
    "redis hash": _redis,
    "history row": _history,
}


def test_the_sample_sets_every_field_of_run_to_something_else_than_its_default() -> None:
    fields = {item.name: item for item in dataclasses.fields(Run)}
    assert set(NOT_DEFAULT) == set(fields), "a new Run field needs a value here"
    defaults = Run(id="", task="")
    for name in fields:
        assert NOT_DEFAULT[name] != getattr(defaults, name), name


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_every_field_survives_every_encoding(codec: str) -> None:
    run = Run(**NOT_DEFAULT)

    decoded = CODECS[codec](run)

    lost = {
        item.name: (getattr(run, item.name), getattr(decoded, item.name))
        for item in dataclasses.fields(Run)
        if getattr(run, item.name) != getattr(decoded, item.name)
    }
    assert not lost, f"the {codec} does not carry: {lost}"


# Keys of a run's hash the Lua scripts (store/redis_scripts.py) read or write by name:
# a Run field renamed without keeping its key would leave the scripts on the old one.
LUA_RUN_KEYS = {"task", "priority", "state", "start", "end", "attempt", "worker_id", "v", "score"}
LUA = (
    redis_scripts.ADD_RUNS,
    redis_scripts.APPLY,
    redis_scripts.LEASE,
    redis_scripts.RENEW,
    redis_scripts.REQUEST_ABORT,
    redis_scripts.PURGE,
    redis_scripts.REBUILD_WAITING,
)


def test_every_run_field_has_a_key_in_the_redis_hash() -> None:
    assert list(HASH_KEYS) == [item.name for item in dataclasses.fields(Run)]
    assert set(run_fields(Run(**NOT_DEFAULT))) == {*HASH_KEYS.values(), "score"}


def test_the_redis_hash_keeps_the_keys_the_lua_scripts_use() -> None:
    # The list above is checked against the scripts, so that it cannot go stale.
    assert {key for key in LUA_RUN_KEYS if not any(f"'{key}'" in script for script in LUA)} == set()
    assert LUA_RUN_KEYS - set(run_fields(Run(**NOT_DEFAULT))) == set()
