"""What the dispatcher refuses at its door, before a value can reach a store or a loop.

A value that passed here keeps every later step total: lease deadlines are finite
because timeouts are, a run id fits every key and column, a registration's numbers
make the retry arithmetic meaningful. The limits themselves live in
``fluid.scheduler.limits``; this module applies them to the dispatcher's inputs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from fluid.scheduler.definition import TaskDefinition
from fluid.scheduler.errors import InvalidArgumentError
from fluid.scheduler.limits import check_json, check_text, limits
from fluid.scheduler.models import RetryPolicy

_RUN_ID_CHARS = re.compile(r"^[A-Za-z0-9_.:\-]+$")
# Opaque dead-letter ids and cursors: the stores' ids are digits, a Redis stream id
# two groups of them.
_LETTER_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")


def check_run_id(value: str, field: str = "run_id") -> None:
    """A run id: 1 to ``id_chars`` characters among letters, digits and ``_ . : -``."""
    most = limits().id_chars
    if not value or len(value) > most or not _RUN_ID_CHARS.match(value):
        raise InvalidArgumentError(
            f"{field}: 1 to {most} characters among letters, digits and _ . : -"
        )


def _is_letter_id(value: str) -> bool:
    # Each part must fit 64 bits, as Redis stream ids do.
    return bool(_LETTER_ID.match(value)) and all(int(part) < 2**64 for part in value.split("-"))


def check_letter_ids(ids: Sequence[str], field: str = "ids") -> None:
    most = limits().queue_batch_runs
    if len(ids) > most:
        raise InvalidArgumentError(f"{field}: at most {most} per call, got {len(ids)}")
    for index, letter_id in enumerate(ids):
        if not _is_letter_id(letter_id):
            raise InvalidArgumentError(f"{field}[{index}]: not a dead-letter id")


def check_cursor(cursor: str) -> None:
    if cursor and not _is_letter_id(cursor):
        raise InvalidArgumentError("cursor: malformed")


def check_count(count: int, field: str) -> None:
    most = limits().ids_per_call
    if count > most:
        raise InvalidArgumentError(f"{field}: at most {most} per call, got {count}")


def _check_number(
    value: float, field: str, low: float, high: float, *, low_open: bool = False
) -> None:
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        bound = f"above {low}" if low_open else f"at least {low}"
        raise InvalidArgumentError(f"{field}: must be a finite number {bound} and at most {high}")


def _check_retry(policy: RetryPolicy | None, field: str) -> None:
    if policy is None:
        return
    limit = limits()
    if policy.max_attempts is not None:
        _check_number(policy.max_attempts, f"{field}.max_attempts", 0, limit.max_retry_attempts)
    _check_number(policy.wait, f"{field}.wait", 0, limit.max_retry_wait_seconds)
    _check_number(policy.max_wait, f"{field}.max_wait", 0, limit.max_retry_wait_seconds)
    _check_number(policy.backoff, f"{field}.backoff", 1, 100)
    for index, name in enumerate(policy.exception_names):
        check_text(name, f"{field}.exceptions[{index}]", 200)


def check_definition(definition: TaskDefinition, field: str) -> None:
    """Refuse a registration whose numbers or sizes would break the queue later."""
    limit = limits()
    check_text(definition.name, f"{field}.name", limit.task_name_chars)
    for name, text in (
        ("module", definition.module),
        ("short_description", definition.short_description),
        ("description", definition.description),
    ):
        check_text(text, f"{field}.{name}", limit.schema_bytes)
    _check_number(
        definition.timeout_seconds,
        f"{field}.timeout_seconds",
        0,
        limit.max_timeout_seconds,
        low_open=True,
    )
    _check_number(definition.max_concurrency, f"{field}.max_concurrency", 0, limit.max_concurrency)
    _check_retry(definition.retry, f"{field}.retry")
    _check_retry(definition.rate_limit_retry, f"{field}.rate_limit_retry")
    if len(definition.tags) > limit.tags:
        raise InvalidArgumentError(f"{field}.tags: at most {limit.tags} tags")
    for tag in sorted(definition.tags):
        check_text(tag, f"{field}.tags", limit.tag_chars)
    # Schemas nest deeper than params ($defs, combinators) and never travel in a Struct.
    check_json(definition.params_schema, f"{field}.params_schema", limit.schema_bytes, 64)


def check_concurrency(concurrency: int) -> None:
    # A worker leases and heartbeats up to its concurrency in one call: past ids_per_call
    # every one of those calls would be refused.
    _check_number(concurrency, "concurrency", 0, limits().ids_per_call)


# How far ahead of the dispatcher's clock a worker's start time may be (clocks drift
# apart by less, under NTP): a worker claiming a later start would own its tasks'
# definitions against every worker started before that time.
STARTED_SKEW = timedelta(minutes=5)


def check_started(started: datetime | None, now: datetime) -> None:
    """A worker's start time (its generation): not in the future beyond clock skew."""
    if started is not None and started > now + STARTED_SKEW:
        raise InvalidArgumentError(
            f"started: {started.isoformat()} is in the future (the dispatcher's clock says "
            f"{now.isoformat()}, at most {STARTED_SKEW.total_seconds():g}s of skew)"
        )
