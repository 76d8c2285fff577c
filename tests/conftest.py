"""Shared pytest fixtures. Keep each group under its own header."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresServer, running_postgres, unique_database_name

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
