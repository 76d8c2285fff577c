"""Making the async engine for SQLite or PostgreSQL, and pinging it.

This module owns the connection-level settings that the repositories rely on:

* SQLite runs in WAL mode with foreign keys on and a 10 s busy timeout, and
  every transaction starts with ``BEGIN IMMEDIATE``. A unit of work that reads
  and then writes (the booking overlap check, the audit head) therefore holds
  the database's single write lock from its first statement and others *wait*
  for it, instead of both reading and one failing later with SQLITE_BUSY.
* PostgreSQL uses the driver defaults (READ COMMITTED); the repositories take
  row locks where they need them (``lock_for_booking``) and rely on unique keys
  (the audit ``seq``) and version checks for the rest.

It must never create an engine at import time nor read the environment: the
caller passes an already-normalised URL (``server.settings``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
    "PRAGMA synchronous=NORMAL",
)


def create_engine(url: str) -> AsyncEngine:
    """An ``AsyncEngine`` for ``sqlite+aiosqlite:///ABS/PATH.db`` or ``postgresql+asyncpg://...``."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed)
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        return create_async_engine(parsed, pool_pre_ping=True)
    raise ValueError(f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}")


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the driver from issuing its own (deferred) BEGIN; "begin" below does it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in _SQLITE_PRAGMAS:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers ``SELECT 1`` (for /healthz)."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
