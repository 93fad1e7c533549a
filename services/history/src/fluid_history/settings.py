"""History's settings, from ``FLUID_*`` environment variables."""

from __future__ import annotations

from pydantic import Field

from fluid.service.settings import FluidBaseSettings


class HistorySettings(FluidBaseSettings):
    """Where history stores runs and how long it keeps them."""

    # FLUID_DATABASE_URL: a SQLite file under .fluid/ by default, so the embedded mode
    # needs no database server; production points it at PostgreSQL
    # (postgresql+psycopg://user:password@host/db).
    database_url: str = "sqlite+aiosqlite:///.fluid/history.db"
    # FLUID_HISTORY_MIGRATE_ON_START: upgrade the schema when the service starts. Handy
    # in development; production turns it off and runs `fluid history migrate` once per
    # release (a Job), so replicas never need DDL rights.
    history_migrate_on_start: bool = True
    # How long a starting history waits for its database before it gives up (and exits).
    history_database_wait_seconds: float = Field(default=60, ge=0)
    # FLUID_HISTORY_RETENTION_DAYS: delete runs queued longer ago than this; 0 keeps all.
    history_retention_days: float = Field(default=0, ge=0)
    history_retention_interval_seconds: float = Field(default=3600, gt=0)
    # Rows deleted per statement: small enough that each delete is a short transaction.
    history_retention_batch_size: int = Field(default=5000, gt=0)
