"""Bringing a database's schema up to date with Alembic, without alembic.ini.

This module owns how migrations are run: it builds the Alembic ``Config`` in
code (script location = the ``migrations`` package next to this file), opens
one transaction on the caller's engine and hands that connection to
``migrations/env.py``. On PostgreSQL the whole upgrade is one transaction; on
SQLite the ``BEGIN IMMEDIATE`` of ``engine.py`` keeps a second process out
while it runs.

It must never create its own engine or read the environment.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    # ConfigParser interpolates "%": escape it in case the install path has one.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


def head_revision() -> str | None:
    """The newest revision this code knows about."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply every migration up to ``revision``; harmless when already there."""
    config = alembic_config()

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None if it was never migrated."""

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)
