"""History's settings, from ``FLUID_*`` environment variables."""

from __future__ import annotations

from fluid.service.settings import FluidBaseSettings


class HistorySettings(FluidBaseSettings):
    """Where history stores runs (``FLUID_DATABASE_URL``).

    The default is a SQLite file under ``.fluid/`` in the working directory, so the
    embedded mode needs no database server; production points it at PostgreSQL
    (``postgresql+psycopg://...``).
    """

    database_url: str = "sqlite+aiosqlite:///.fluid/history.db"
