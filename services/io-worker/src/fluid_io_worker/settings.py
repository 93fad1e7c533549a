"""io-worker settings (``FLUID_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field

from fluid.service.settings import LeasingSettings


class WorkerSettings(LeasingSettings):
    """How many runs a worker executes at once and how it asks for them."""

    worker_concurrency: int = Field(default=100, gt=0)
