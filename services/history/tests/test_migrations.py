"""Alembic migrations: they build exactly the schema the store's metadata describes."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from fluid_cli.main import app as fluid_cli
from fluid_history.store import migrate
from fluid_history.store.engine import database_url as parse_url
from fluid_history.store.engine import open_engine
from fluid_history.store.schema import included_on, metadata
from fluid_history.store.sql import SqlRunStore
from fluid_history.testing import PostgresSchema

from .support import MakeRun


@pytest.fixture
async def engine(database_url: str | URL) -> AsyncIterator[AsyncEngine]:
    opened = open_engine(parse_url(database_url))
    try:
        yield opened
    finally:
        await opened.dispose()


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "include_object": included_on(connection.dialect.name)},
    )
    return list(compare_metadata(context, metadata))


async def _diff(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as connection:
        return await connection.run_sync(_schema_diff)


async def test_the_migrations_build_the_metadata_schema(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)
    assert await _diff(engine) == []
    assert await migrate.current_revisions(engine) == {migrate.head_revision()}


async def test_the_comparison_sees_a_missing_index(engine: AsyncEngine) -> None:
    # Guards the test above: an empty diff must not come from a comparison that sees nothing.
    await migrate.upgrade(engine)
    async with engine.begin() as connection:
        await connection.execute(text("DROP INDEX ix_runs_task_queued_id"))
    assert [change[0] for change in await _diff(engine)] == ["add_index"]


async def test_upgrading_twice_changes_nothing(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)
    await migrate.upgrade(engine)
    assert await _diff(engine) == []


async def test_a_database_from_before_migrations_is_adopted(
    engine: AsyncEngine, database_url: str | URL, make_run: MakeRun
) -> None:
    # The service used to create the baseline schema without Alembic: same tables, no
    # version table, and runs that must survive.
    await migrate.upgrade(engine, migrate.BASELINE)
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE alembic_version"))
    legacy = SqlRunStore(database_url, migrate=False)
    with pytest.raises(migrate.SchemaNotCurrentError, match="fluid history migrate"):
        await legacy.open()

    store = SqlRunStore(database_url)
    await store.open()
    try:
        await store.record([make_run("kept")])
    finally:
        await store.close()
    assert await migrate.current_revisions(engine) == {migrate.head_revision()}
    assert await _diff(engine) == []


async def test_without_migrate_on_start_an_empty_database_is_refused(
    database_url: str | URL,
) -> None:
    store = SqlRunStore(database_url, migrate=False)
    with pytest.raises(migrate.SchemaNotCurrentError, match=r"fluid history migrate"):
        await store.open()


async def test_without_migrate_on_start_a_database_behind_the_code_is_refused(
    engine: AsyncEngine, database_url: str | URL
) -> None:
    await migrate.upgrade(engine, migrate.BASELINE)
    store = SqlRunStore(database_url, migrate=False)
    with pytest.raises(migrate.SchemaNotCurrentError, match=rf"at revision {migrate.BASELINE},"):
        await store.open()


async def test_a_database_ahead_of_the_code_is_served(
    engine: AsyncEngine, database_url: str | URL, make_run: MakeRun
) -> None:
    # A newer release migrated first (rolling deploy): this one keeps serving.
    await migrate.upgrade(engine)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = 'from_future'"))
    store = SqlRunStore(database_url, migrate=False)
    await store.open()
    try:
        assert [run.id for run in (await store.record([make_run("r")])).applied] == ["r"]
    finally:
        await store.close()


def test_fluid_history_migrate_prepares_the_database(database_url: str | URL) -> None:
    url = parse_url(database_url).render_as_string(hide_password=False)
    result = CliRunner().invoke(fluid_cli, ["history", "migrate", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert f"at revision {migrate.head_revision()}" in result.output

    async def served_without_migrating() -> None:
        store = SqlRunStore(url, migrate=False)
        await store.open()
        await store.close()

    asyncio.run(served_without_migrating())


def test_fluid_history_migrate_reports_an_unreachable_database() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    result = CliRunner().invoke(fluid_cli, ["history", "migrate", "--database-url", url])
    assert result.exit_code == 1
    assert "cannot reach postgresql+psycopg://nobody@127.0.0.1:1/none" in result.output


def test_fluid_history_revision_writes_what_the_database_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The new revision goes to a copy of the migrations, not into the package.
    scripts = tmp_path / "migrations"
    shutil.copytree(
        Path(migrate.__file__).parents[1] / "migrations",
        scripts,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    monkeypatch.setattr(migrate, "SCRIPT_LOCATION", str(scripts))
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    head = migrate.head_revision()

    async def at_head_but_an_index() -> None:
        engine = open_engine(parse_url(url))
        try:
            await migrate.upgrade(engine)
            async with engine.begin() as connection:
                await connection.execute(text("DROP INDEX ix_runs_task_queued_id"))
        finally:
            await engine.dispose()

    asyncio.run(at_head_but_an_index())
    result = CliRunner().invoke(
        fluid_cli, ["history", "revision", "restore an index", "--database-url", url]
    )
    assert result.exit_code == 0, result.output
    written = Path(result.output.strip().splitlines()[-1])
    assert written.name == f"{int(head) + 1:04}_restore_an_index.py"
    revision = written.read_text()
    assert f"down_revision = {head!r}" in revision
    assert "op.create_index(op.f('ix_runs_task_queued_id')" in revision


async def test_replicas_starting_together_migrate_once(postgres: PostgresSchema) -> None:
    stores = [SqlRunStore(postgres.url) for _ in range(3)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
    finally:
        for store in stores:
            await store.close()
    engine = open_engine(postgres.url)
    try:
        assert await migrate.current_revisions(engine) == {migrate.head_revision()}
    finally:
        await engine.dispose()
