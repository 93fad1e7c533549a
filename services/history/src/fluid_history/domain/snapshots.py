"""Rules that decide which run snapshots of a batch reach the store, and in what shape."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from fluid.scheduler.run import Run

SKIP_DB_TAG = "skip_db"
"""Tasks tagged with it are deliberately kept out of history (noisy or sensitive runs)."""


@dataclass(frozen=True, slots=True)
class RefusedSnapshot:
    """A snapshot history did not store, and why (the field, or the database's refusal)."""

    run_id: str
    version: int
    reason: str

    @classmethod
    def of(cls, run: Run, reason: str) -> RefusedSnapshot:
        return cls(run_id=run.id, version=run.version, reason=reason)


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What recording a batch did: the snapshots that changed a stored run, the refused ones.

    Snapshots in neither were stale (a version the store already had), stood for by a
    newer snapshot of their run, or kept out on purpose (``SKIP_DB_TAG``).
    """

    applied: tuple[Run, ...] = ()
    refused: tuple[RefusedSnapshot, ...] = ()

    def __add__(self, other: RecordResult) -> RecordResult:
        return RecordResult(self.applied + other.applied, self.refused + other.refused)


def refuse_invalid(runs: Iterable[Run]) -> tuple[list[Run], list[RefusedSnapshot]]:
    """The snapshots a store can take, and a refusal naming the field of each other one."""
    valid: list[Run] = []
    refused: list[RefusedSnapshot] = []
    for run in runs:
        if not run.id:
            refused.append(RefusedSnapshot.of(run, "id: required"))
        elif not run.task:
            refused.append(RefusedSnapshot.of(run, "task: required"))
        else:
            valid.append(run)
    return valid, refused


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
