"""The hand-written Alembic migrations build exactly the schema of tables.py."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from sessions.adapters.sql import current_revision, head_revision, upgrade
from sessions.adapters.sql.migrate import alembic_config
from sessions.adapters.sql.tables import metadata


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_an_empty_database_has_no_revision(engine: AsyncEngine) -> None:
    assert await current_revision(engine) is None


async def test_after_upgrade_the_schema_matches_the_tables_exactly(engine: AsyncEngine) -> None:
    await upgrade(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert tables == set(metadata.tables) | {"alembic_version"}


async def test_after_upgrade_the_database_is_at_the_head_revision(engine: AsyncEngine) -> None:
    await upgrade(engine)
    assert head_revision() == "0004"
    assert await current_revision(engine) == head_revision()


async def test_running_upgrade_twice_is_harmless(engine: AsyncEngine) -> None:
    await upgrade(engine)
    await upgrade(engine)
    assert await current_revision(engine) == head_revision()
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []


async def test_downgrade_to_base_and_upgrade_again_round_trips(engine: AsyncEngine) -> None:
    await upgrade(engine)
    config = alembic_config()

    def downgrade(conn: Connection) -> None:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")

    async with engine.begin() as conn:
        await conn.run_sync(downgrade)
    assert await current_revision(engine) is None
    await upgrade(engine)
    assert await current_revision(engine) == head_revision()
