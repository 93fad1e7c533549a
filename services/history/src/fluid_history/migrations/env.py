"""Alembic's entry into the history database, on the same async engine the store uses.

``fluid_history.store.migrate`` runs Alembic commands inside a connection it already
holds (``config.attributes["connection"]``), so a migration and the checks around it
share one transaction. Without one, for instance from the ``alembic`` command line, the
database named by ``sqlalchemy.url`` (else ``FLUID_DATABASE_URL``) is opened here.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from fluid_history.settings import HistorySettings
from fluid_history.store.engine import database_errors, database_url, open_engine
from fluid_history.store.schema import included_on, metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=included_on(connection.dialect.name),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_on_own_engine(url: str) -> None:
    engine = open_engine(database_url(url))
    try:
        async with database_errors(), engine.begin() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


given: Connection | None = context.config.attributes.get("connection")
if given is not None:
    run_migrations(given)
else:
    url = context.config.get_main_option("sqlalchemy.url") or HistorySettings().database_url
    asyncio.run(run_on_own_engine(url))
