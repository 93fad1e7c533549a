"""The limits every fluid process enforces at its door, in one place.

A value that would break an invariant later (a params object too deep for protobuf to
nest, a NaN that JSON cannot carry, a NUL that PostgreSQL cannot store, a result larger
than a gRPC message) is refused where it enters, naming the field, instead of poisoning
a batch it later travels in. Each limit is a setting (``FLUID_LIMIT_<NAME>``); every
process of one deployment must see the same values, and ``message_bytes`` (the gRPC
message size every server and channel accepts) must stay above the largest message the
other limits allow, which the settings check.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any, TypeVar

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import InvalidArgumentError

T = TypeVar("T")

KIB = 1024
MIB = 1024 * KIB

# Page sizes of the listings (history's runs, the dispatcher's dead letters): a limit of
# 0 (an unset proto field) asks for PAGE_DEFAULT, one above PAGE_MAX is refused. Fixed
# rather than settings: the protos and the CLI's help state them to every caller.
PAGE_DEFAULT = 50
PAGE_MAX = 500


class Limits(BaseSettings):
    """Sizes, lengths and ranges of what callers and workers may send (README, "Limits")."""

    model_config = SettingsConfigDict(env_prefix="FLUID_LIMIT_", extra="ignore", frozen=True)

    # A run's params, encoded as compact JSON.
    params_bytes: int = Field(default=256 * KIB, gt=0)
    # A task's return value, encoded as compact JSON: a larger one fails the run.
    result_bytes: int = Field(default=1 * MIB, gt=0)
    # Nesting of objects and lists in params and results, the top object counting 1.
    # Protobuf refuses to build messages nested past 100 levels, and every JSON level
    # costs it three (Struct, map entry, Value) on top of the reply's own levels.
    json_depth: int = Field(default=20, gt=0, le=30)
    # Ids and keys callers choose.
    id_chars: int = Field(default=128, gt=0, le=1024)
    idempotency_key_chars: int = Field(default=256, gt=0, le=4096)
    task_name_chars: int = Field(default=200, gt=0, le=1024)
    # An abort reason or a worker's reason for aborting.
    reason_chars: int = Field(default=2 * KIB, gt=0)
    # A task's tags: how many and how long.
    tags: int = Field(default=64, gt=0)
    tag_chars: int = Field(default=128, gt=0)
    # A task's params JSON Schema, as registered.
    schema_bytes: int = Field(default=64 * KIB, gt=0)
    # What is kept of a failed run's error message and traceback (the end of a
    # traceback is kept: that is where the exception is).
    error_message_chars: int = Field(default=8 * KIB, gt=0)
    traceback_chars: int = Field(default=64 * KIB, gt=0)
    # Output tail lines kept per run and characters kept per line.
    output_lines: int = Field(default=200, ge=0)
    output_line_chars: int = Field(default=2 * KIB, gt=0)
    # Largest gRPC message any fluid server or channel takes.
    message_bytes: int = Field(default=32 * MIB, gt=0)
    # Budget of one batch message a fluid process builds (reports, history snapshots,
    # lease replies): a batch is cut before it grows past this, one item is always sent.
    batch_bytes: int = Field(default=4 * MIB, gt=0)
    # Batch counts.
    queue_batch_runs: int = Field(default=1000, gt=0)
    ids_per_call: int = Field(default=10_000, gt=0)
    # Registration numbers.
    max_timeout_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    max_retry_attempts: int = Field(default=1000, gt=0)
    max_retry_wait_seconds: float = Field(default=30 * 24 * 3600.0, gt=0)
    max_concurrency: int = Field(default=100_000, gt=0)
    # How far ahead a run may be delayed.
    max_delay_days: int = Field(default=3660, gt=0)

    @model_validator(mode="after")
    def _messages_hold_one_run(self) -> Limits:
        # One run's snapshot (params, result, error, output) must fit in a batch, and a
        # batch in a message, or a legal run could never be delivered.
        one_run = (
            self.params_bytes
            + self.result_bytes
            + 4 * (self.error_message_chars + self.traceback_chars + self.reason_chars)
            + self.output_lines * 4 * self.output_line_chars
            + 64 * KIB
        )
        if self.batch_bytes < one_run:
            raise ValueError(
                f"FLUID_LIMIT_BATCH_BYTES ({self.batch_bytes}) must hold one run at the "
                f"largest the other limits allow ({one_run} bytes)"
            )
        if self.message_bytes < 2 * self.batch_bytes:
            raise ValueError(
                f"FLUID_LIMIT_MESSAGE_BYTES ({self.message_bytes}) must be at least twice "
                f"FLUID_LIMIT_BATCH_BYTES ({self.batch_bytes})"
            )
        return self


@cache
def limits() -> Limits:
    """This process's limits, read from the environment once."""
    return Limits()


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON (how the limits count sizes)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def check_json(value: Any, field: str, max_bytes: int | None, max_depth: int | None = None) -> None:
    """Refuse what cannot travel and be stored everywhere: NaN and infinities, NUL
    characters (PostgreSQL's JSONB and text refuse them), nesting past ``max_depth``,
    non-JSON types and more than ``max_bytes`` of JSON (None: any size)."""
    depth = limits().json_depth if max_depth is None else max_depth
    _check_value(value, field, depth, 1)
    if max_bytes is None:
        return
    size = json_size(value)
    if size > max_bytes:
        raise InvalidArgumentError(
            f"{field}: {size} bytes of JSON, over the limit of {max_bytes} bytes"
        )


def _check_value(value: Any, field: str, max_depth: int, depth: int) -> None:
    # Recursive only in depth, which max_depth bounds.
    if isinstance(value, Mapping | list | tuple):
        if depth > max_depth:
            raise InvalidArgumentError(f"{field}: nested deeper than {max_depth} levels")
        for name, item in _members(value, field):
            _check_value(item, name, max_depth, depth + 1)
    elif isinstance(value, str):
        if "\x00" in value:
            raise InvalidArgumentError(f"{field}: holds a NUL character")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgumentError(f"{field}: {value} is not a finite number")
    elif value is not None and not isinstance(value, bool | int):
        raise InvalidArgumentError(f"{field}: {type(value).__name__} is not a JSON value")


def _members(container: Any, field: str) -> list[tuple[str, Any]]:
    """The items of an object or a list, each with the field name it is reported as."""
    if not isinstance(container, Mapping):
        return [(f"{field}[{index}]", item) for index, item in enumerate(container)]
    for key in container:
        if not isinstance(key, str):
            raise InvalidArgumentError(f"{field}: object keys must be strings")
        if "\x00" in key:
            raise InvalidArgumentError(f"{field}: a key holds a NUL character")
    return [(f"{field}.{key}", item) for key, item in container.items()]


def check_text(value: str, field: str, max_chars: int) -> None:
    """A caller-chosen string: at most ``max_chars`` characters, no NUL."""
    if len(value) > max_chars:
        raise InvalidArgumentError(f"{field}: {len(value)} characters, at most {max_chars}")
    if "\x00" in value:
        raise InvalidArgumentError(f"{field}: holds a NUL character")


# NUL (PostgreSQL refuses it) and lone surrogates (not UTF-8: protobuf and JSON encoders
# refuse them; they come from file names decoded with surrogateescape).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> str:
    """Text a task produced (error, output) made storable everywhere: NUL and lone
    surrogates become U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", value)


def truncated(value: str, max_chars: int, keep_end: bool = False) -> str:
    """``value`` cut to at most ``max_chars`` characters, saying how much was cut (so
    cutting again to the same limit changes nothing)."""
    if len(value) <= max_chars:
        return value
    # The marker for cutting everything is at least as long as the real one.
    keep = max(max_chars - len(f"[{len(value)} characters cut]") - 1, 0)
    marker = f"[{len(value) - keep} characters cut]"
    if keep_end:
        return (marker + "\n" + value[len(value) - keep :])[-max_chars:]
    return (value[:keep] + "\n" + marker)[:max_chars]


def batches(
    items: Sequence[T], size: Callable[[T], int], max_bytes: int, max_count: int | None = None
) -> list[list[T]]:
    """``items`` in order, cut into batches of at most ``max_bytes`` (by ``size``) and
    ``max_count`` items; an item larger than ``max_bytes`` goes alone, so every item is
    sent and no batch message outgrows what its receiver takes."""
    cut: list[list[T]] = []
    total = 0
    for item in items:
        item_size = size(item)
        full = max_count is not None and cut and len(cut[-1]) >= max_count
        if cut and not full and total + item_size <= max_bytes:
            cut[-1].append(item)
            total += item_size
        else:
            cut.append([item])
            total = item_size
    return cut
