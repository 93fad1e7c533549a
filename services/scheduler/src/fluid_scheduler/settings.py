"""Scheduler settings (``FLUID_*`` environment variables).

The broker settings are the dispatcher's (``FLUID_BROKER_URL``, ``FLUID_BROKER_NAMESPACE``):
on Redis the lease and slot records sit next to the queue, under the same hash tag;
``memory://`` keeps them in the process, where the one replica always leads.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from fluid.service.loops import RENEWALS_PER_TTL, renewal_interval
from fluid.service.settings import BrokerSettings, TaskModuleSettings

from .domain.firing import FiringConfig

# The domain's defaults are the settings' defaults: one value, stated once.
_DEFAULTS = FiringConfig()


class SchedulerSettings(BrokerSettings, TaskModuleSettings):
    """Timings of the scheduler. Task modules are optional: imported only for ``randomize``."""

    # Longest sleep between two passes. Fires do not wait for it (the leader wakes at
    # each slot); it bounds how soon a standby takes a free lease and a retry happens.
    scheduler_tick_seconds: float = Field(default=_DEFAULTS.tick, gt=0)
    # The leader lease: a standby takes over at most this long (plus a tick) after the
    # leader dies, at once after it stops gracefully.
    scheduler_lease_ttl_seconds: float = Field(default=5.0, gt=0)
    # How often every replica reads the scheduled tasks (and enabled flags) from the dispatcher.
    scheduler_refresh_seconds: float = Field(default=2.0, gt=0)
    # A due slot is fired up to this late; slots older than that are missed and follow
    # the task's policy (skip, or one catch-up run). Above the lease TTL, a failover
    # loses no slot.
    scheduler_misfire_grace_seconds: float = Field(
        default=_DEFAULTS.misfire_grace.total_seconds(), ge=0
    )
    # One dispatcher call (QueueRun(s), ListTasks) or store write may take this long before
    # it counts as failed.
    scheduler_call_timeout_seconds: float = Field(default=_DEFAULTS.call_timeout, gt=0)
    scheduler_max_concurrent_queues: int = Field(default=_DEFAULTS.max_concurrent_queues, gt=0)
    scheduler_summary_interval_seconds: float = Field(default=_DEFAULTS.summary_interval, gt=0)

    @model_validator(mode="after")
    def _tick_below_lease(self) -> SchedulerSettings:
        # A leader renews its lease at its passes, several times per TTL: a tick longer
        # than a renewal interval would let the lease lapse between them.
        if self.scheduler_tick_seconds >= renewal_interval(self.scheduler_lease_ttl_seconds):
            raise ValueError(
                "FLUID_SCHEDULER_TICK_SECONDS must be below "
                f"FLUID_SCHEDULER_LEASE_TTL_SECONDS / {RENEWALS_PER_TTL}"
            )
        return self
