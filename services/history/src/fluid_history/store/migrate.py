"""Bringing a history database to the schema this code needs, with Alembic.

The revisions live in ``fluid_history/migrations``; no ``alembic.ini`` is needed: the
configuration is built here and every command runs inside a connection of the async
engine, in one transaction (PostgreSQL and SQLite both roll DDL back on failure).
"""

from __future__ import annotations

import logging

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from .engine import database_errors

SCRIPT_LOCATION = "fluid_history:migrations"
BASELINE = "0001"
"""The revision equal to the schema the service created before it had migrations."""

# Any constant works as long as nothing else on the server uses it for an advisory lock.
_MIGRATION_LOCK = 0x666C756964  # "fluid"

logger = logging.getLogger("fluid.history.migrate")


class SchemaNotCurrentError(RuntimeError):
    """The database lacks revisions this code needs, and migrating on start is off."""


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {SCRIPT_LOCATION}")
    return head


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply the revisions up to ``revision``; a database already there is left alone."""
    async with database_errors(), engine.begin() as connection:
        await connection.run_sync(_upgrade, revision)


async def current_revisions(engine: AsyncEngine) -> set[str]:
    async with database_errors(), engine.connect() as connection:
        return await connection.run_sync(_current)


async def require_current(engine: AsyncEngine) -> None:
    """Raise ``SchemaNotCurrentError`` unless the database has every revision up to head.

    A database *ahead* of this code (a revision it does not know) is accepted: during a
    rolling deploy the new version migrates first and the old one keeps serving, which
    is why migrations only ever add or widen.
    """
    current = await current_revisions(engine)
    head = head_revision()
    if head in current:
        return
    if not current:
        raise SchemaNotCurrentError(
            "the history database has no schema: run `fluid history migrate` "
            "(or set FLUID_HISTORY_MIGRATE_ON_START=true)"
        )
    script = ScriptDirectory.from_config(alembic_config())
    known: set[str] = set()
    for revision in current:
        try:
            script.get_revision(revision)
        except CommandError:
            logger.warning("history database is at %s, newer than this code (%s)", revision, head)
            continue
        known.add(revision)
    if known:
        raise SchemaNotCurrentError(
            f"the history database is at revision {', '.join(sorted(known))}, this code needs "
            f"{head}: run `fluid history migrate`"
        )


async def new_revision(engine: AsyncEngine, message: str) -> str:
    """Write the next revision: what the metadata has and the database lacks.

    For developers after a change to ``schema.py``; the database must be at head. Returns
    the new file's path. Review it: autogenerate misses some changes (renames, for one).
    """
    async with database_errors(), engine.connect() as connection:
        return await connection.run_sync(_new_revision, message)


def _new_revision(connection: Connection, message: str) -> str:
    # Revisions are numbered, not random hashes: the order reads from the file names.
    number = f"{int(head_revision()) + 1:04}"
    script = command.revision(
        alembic_config(connection), message=message, autogenerate=True, rev_id=number
    )
    if not isinstance(script, Script):
        raise RuntimeError(f"alembic wrote no single revision for {message!r}")
    return script.path


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        # Replicas starting together would race to create the same tables; the lock
        # makes them migrate one after the other (it is released at commit), and the
        # later ones find the schema already current.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    config = alembic_config(connection)
    if not _current(connection) and inspect(connection).has_table("runs"):
        logger.info("stamping a history database created before migrations as %s", BASELINE)
        command.stamp(config, BASELINE)
    command.upgrade(config, revision)


def _current(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())
