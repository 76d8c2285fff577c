"""Backends for the storage tests: memory, SQLite on a temp file, a real PostgreSQL database;
and the seeded demo app the page, console and API tests share.

The URL fixtures are synchronous on purpose: ``postgres_url`` creates its database with
``asyncio.run``, which cannot be called from inside the event loop an async fixture runs in,
so it is requested (lazily, only for the postgres parameter) from a plain fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from pytest_aiohttp.plugin import AiohttpClient
from sqlalchemy.ext.asyncio import AsyncEngine

from server.app import create_app
from server.demo import DemoSeed, seed
from server.settings import Settings
from sessions.adapters.sql import SqlUnitOfWorkFactory, create_engine, upgrade
from sessions.clock import ManualClock
from sessions.memory import MemoryUnitOfWorkFactory
from sessions.repository import UnitOfWork
from tests.support.domain import APP_START

SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
ALL_BACKENDS = ["memory", *SQL_BACKENDS]

#: What the service layer is given: a callable making a fresh unit of work.
UowFactory = Callable[[], UnitOfWork]


def _url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'db' / 'visitgate.db'}"
    if backend == "postgres":
        url = request.getfixturevalue("postgres_url")
        assert isinstance(url, str)
        return url
    raise ValueError(backend)


@pytest.fixture(params=SQL_BACKENDS)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty SQLite or PostgreSQL database."""
    return _url(request.param, request, tmp_path)


@pytest.fixture
async def engine(sql_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty, *unmigrated* database."""
    made = create_engine(sql_url)
    try:
        yield made
    finally:
        await made.dispose()


@pytest.fixture
async def migrated_engine(engine: AsyncEngine) -> AsyncEngine:
    await upgrade(engine)
    return engine


@pytest.fixture(params=ALL_BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None for the in-memory fake, else the URL of an empty database."""
    return None if request.param == "memory" else _url(request.param, request, tmp_path)


@pytest.fixture
async def uow_factory(backend_url: str | None) -> AsyncIterator[UowFactory]:
    if backend_url is None:
        yield MemoryUnitOfWorkFactory()
        return
    made = create_engine(backend_url)
    try:
        await upgrade(made)
        yield SqlUnitOfWorkFactory(made)
    finally:
        await made.dispose()


# --- the seeded demo app (demo facility, officers, detainee, kiosk, scheduled visit) ---------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_sources({"data_dir": str(tmp_path)}, environ={})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(APP_START)


@pytest.fixture
async def demo(settings: Settings, clock: ManualClock) -> DemoSeed:
    return await seed(settings, clock)


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, settings: Settings, clock: ManualClock, demo: DemoSeed
) -> TestClient[Request, Application]:
    return await aiohttp_client(create_app(settings, clock=clock))
