"""Shared pytest fixtures. Keep each group under its own header."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresServer, running_postgres, unique_database_name
from tests.support.redis import REDIS_SERVER, RedisServer, redis_available, running_redis

# --- Real PostgreSQL (tests/support/postgres.py) ---------------------------------------------
# One throwaway server per test session; every test that asks for `postgres_url` gets its own
# fresh, empty database on it. Mark such tests with @pytest.mark.postgres.


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL (postgresql+asyncpg://...) of a new, empty database."""
    name = unique_database_name()
    postgres_server.create_database_sync(name)
    return postgres_server.url(name)


# --- Real Redis (tests/support/redis.py) -----------------------------------------------------
# One throwaway server per test session (skipped only when Debian's redis-server is not
# installed); every test that asks for `redis_url` gets database 0 emptied. Mark such tests
# with @pytest.mark.redis.


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if not redis_available():
        pytest.skip(
            f"{REDIS_SERVER} not found: install Debian's 'redis-server' package (./run setup)"
        )
    with running_redis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """redis://127.0.0.1:PORT/0 of a real Redis server, database 0 empty."""
    redis_server.flush(0)
    return redis_server.url(0)
