"""What a process reports of its own health: its background loops that are failing now.

A base module, importing nothing of fluid: host plumbing (``fluid.service.loops``, which
tracks the loops) and the model (``QueueStatus``, which carries them to callers) both use
it, and neither may import the other (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class DegradedLoop:
    """A background loop whose last round failed: with what, and since when."""

    name: str
    error: str
    since: datetime
