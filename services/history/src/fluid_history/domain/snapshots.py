"""Rules that decide which run snapshots of a batch reach the store, and in what shape."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime

from fluid.scheduler.errors import InvalidArgumentError
from fluid.scheduler.run import Run

SKIP_DB_TAG = "skip_db"
"""Tasks tagged with it are deliberately kept out of history (noisy or sensitive runs)."""


def validate_snapshots(runs: Sequence[Run]) -> None:
    """Refuse the whole batch when one snapshot cannot be stored, naming its index."""
    for index, run in enumerate(runs):
        if not run.id:
            raise InvalidArgumentError(f"runs[{index}].id: required")
        if not run.task:
            raise InvalidArgumentError(f"runs[{index}].task: required")


def storable(runs: Iterable[Run], now: datetime) -> list[Run]:
    """The snapshots history keeps, each with a queued time.

    Pages are ordered and cut on ``queued``, so a stored run must have one. The
    dispatcher always sets it; the fallback only keeps a foreign or buggy producer
    from making a run unreachable by pagination.
    """
    kept: list[Run] = []
    for run in runs:
        if SKIP_DB_TAG in run.tags:
            continue
        if run.queued is None:
            run = dataclasses.replace(run, queued=run.start or now)
        kept.append(run)
    return kept


def latest_per_run(runs: Iterable[Run]) -> list[Run]:
    """One snapshot per run id: the highest version (the first one seen on a tie).

    A tie keeps the first because the store ignores a snapshot whose version equals the
    stored one, and a batch must mean the same as the same snapshots sent one by one.
    """
    latest: dict[str, Run] = {}
    for run in runs:
        seen = latest.get(run.id)
        if seen is None or run.version > seen.version:
            latest[run.id] = run
    return list(latest.values())
