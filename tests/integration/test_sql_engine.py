"""What the SQL adapter adds beyond the repository contract: connection settings and instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import OperationalError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from sessions.adapters.sql import SqlUnitOfWorkFactory, create_engine, ping
from sessions.adapters.sql.tables import audit_log

from .test_repository_contract import T0, appointment, seed

BEIJING = timezone(timedelta(hours=8))


async def test_ping_answers(engine: AsyncEngine) -> None:
    await ping(engine)


async def test_an_unsupported_url_is_refused() -> None:
    with pytest.raises(ValueError):
        create_engine("mysql+aiomysql://u@h/db")


async def test_sqlite_creates_the_parent_directory_and_sets_its_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "visitgate.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
            }
        assert path.exists()
        assert pragmas == {
            "journal_mode": "wal",
            "foreign_keys": 1,
            "busy_timeout": 10000,
            "synchronous": 1,  # NORMAL
        }
    finally:
        await engine.dispose()


async def test_sqlite_transactions_take_the_write_lock_at_begin(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE: a second transaction cannot even start while one is open."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'lock.db'}"
    engine = create_engine(url)
    try:
        async with engine.begin() as first:
            await first.execute(text("SELECT 1"))
            other = create_engine(url)

            @event.listens_for(other.sync_engine, "connect")
            def _impatient(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA busy_timeout=50")  # runs after the adapter's own
                cursor.close()

            try:
                async with other.connect() as second:
                    with pytest.raises(OperationalError, match="locked"):
                        await second.execute(text("SELECT 1"))
            finally:
                await other.dispose()
    finally:
        await engine.dispose()


async def test_instants_come_back_as_aware_utc_with_microseconds(
    migrated_engine: AsyncEngine,
) -> None:
    factory = SqlUnitOfWorkFactory(migrated_engine)
    world = await seed(factory)
    local = (T0 + timedelta(microseconds=1)).astimezone(BEIJING)
    async with factory() as uow:
        await uow.appointments.add(appointment(world, "appt-1", local))
        await uow.commit()
    async with factory() as uow:
        stored = await uow.appointments.get("appt-1")
    assert stored is not None
    assert stored.starts_at.tzinfo is UTC
    assert stored.starts_at == local
    assert stored.starts_at.microsecond == 123457


async def test_a_naive_datetime_is_refused(migrated_engine: AsyncEngine) -> None:
    factory = SqlUnitOfWorkFactory(migrated_engine)
    world = await seed(factory)
    naive = appointment(world, "appt-1", datetime(2026, 3, 2, 9, 0))
    async with factory() as uow:
        with pytest.raises(StatementError, match="naive datetime"):
            await uow.appointments.add(naive)
        with pytest.raises(StatementError, match="naive datetime"):
            await uow.appointments.overlapping("kiosk-1", naive.starts_at, naive.ends_at)


async def test_audit_data_is_stored_as_canonical_json(migrated_engine: AsyncEngine) -> None:
    factory = SqlUnitOfWorkFactory(migrated_engine)
    from .test_repository_contract import event

    async with factory() as uow:
        await uow.audit.append([event(1, 名字="张三", b=[2, 1])])
        await uow.commit()
    async with migrated_engine.connect() as conn:
        stored = (await conn.execute(select(audit_log.c.data))).scalar_one()
    assert stored == '{"b":[2,1],"n":1,"名字":"张三"}'
