"""Values shared by history's test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fluid.scheduler.run import Run

T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
"""A queued time with microseconds, so truncation anywhere would show."""

MakeRun = Callable[..., Run]
