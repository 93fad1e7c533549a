"""Dispatcher settings (``FLUID_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field

from fluid.service.settings import BrokerSettings

from .domain.dispatcher import DispatcherConfig
from .history_forwarder import DEFAULT_BATCH_SIZE
from .store.memory import DEFAULT_MAX_RUNS
from .store.redis import DEFAULT_MAX_CONNECTIONS

# The domain's defaults are the settings' defaults: one value, stated once.
_DEFAULTS = DispatcherConfig()


class DispatcherSettings(BrokerSettings):
    """Where the queue lives (``FLUID_BROKER_URL``, shared with the scheduler) and how
    long leases last."""

    broker_max_connections: int = Field(default=DEFAULT_MAX_CONNECTIONS, gt=0)
    # memory:// only: runs held at most before new ones are refused (RESOURCE_EXHAUSTED).
    memory_max_runs: int = Field(default=DEFAULT_MAX_RUNS, gt=0)
    lease_ttl_seconds: float = Field(default=_DEFAULTS.lease_ttl.total_seconds(), gt=0)
    finished_run_ttl_seconds: float = Field(
        default=_DEFAULTS.finished_run_ttl.total_seconds(), ge=0
    )
    max_lease_wait_seconds: float = Field(default=_DEFAULTS.max_lease_wait.total_seconds(), ge=0)
    housekeeping_interval_seconds: float = Field(default=1.0, gt=0)
    # Set FLUID_HISTORY_FORWARD=false to run without a history service.
    history_forward: bool = True
    history_batch_size: int = Field(default=DEFAULT_BATCH_SIZE, gt=0)
