"""The `postgres_url` fixture gives a reachable, fresh database on a real PostgreSQL server."""

from __future__ import annotations

import asyncpg
import pytest

from tests.support.postgres import PostgresServer, unique_database_name

pytestmark = pytest.mark.postgres


def _asyncpg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def test_postgres_url_points_at_a_database_that_answers_queries(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+asyncpg://visitgate@127.0.0.1:")
    conn = await asyncpg.connect(_asyncpg_dsn(postgres_url))
    try:
        assert await conn.fetchval("SELECT 1") == 1
        database = await conn.fetchval("SELECT current_database()")
    finally:
        await conn.close()
    assert postgres_url.endswith("/" + database)


async def test_two_fresh_databases_are_distinct_and_isolated(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    # A second database made the same way the fixture makes one.
    other_name = unique_database_name()
    await postgres_server.create_database(other_name)
    other_url = postgres_server.url(other_name)
    assert other_url != postgres_url

    first = await asyncpg.connect(_asyncpg_dsn(postgres_url))
    second = await asyncpg.connect(_asyncpg_dsn(other_url))
    try:
        await first.execute("CREATE TABLE only_here (x int)")
        assert await first.fetchval("SELECT to_regclass('only_here') IS NOT NULL")
        assert not await second.fetchval("SELECT to_regclass('only_here') IS NOT NULL")
    finally:
        await first.close()
        await second.close()
