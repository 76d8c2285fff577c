"""Concurrent units of work on real databases: no double booking, no forked audit chain.

SQLite serialises them with BEGIN IMMEDIATE; PostgreSQL with the kiosk row lock
(``lock_for_booking``) and the primary key on the audit ``seq``. The sleeps widen the window
in which the units of work would interleave if nothing serialised them.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from sessions.adapters.sql import SqlUnitOfWorkFactory
from sessions.audit import verify_chain
from sessions.errors import ChainContention

from .test_repository_contract import T0, appointment, event, seed

WINDOW = 0.05


async def test_concurrent_bookings_of_overlapping_slots_on_one_kiosk_store_exactly_one(
    migrated_engine: AsyncEngine,
) -> None:
    factory = SqlUnitOfWorkFactory(migrated_engine)
    world = await seed(factory)

    async def book(n: int) -> bool:
        wanted = appointment(world, f"appt-{n}", T0 + timedelta(minutes=5 * n))
        async with factory() as uow:
            await uow.kiosks.lock_for_booking(world.kiosk.id)
            clash = await uow.appointments.overlapping(
                world.kiosk.id, wanted.starts_at, wanted.ends_at
            )
            await asyncio.sleep(WINDOW)
            if clash:
                return False
            await uow.appointments.add(wanted)
            await asyncio.sleep(WINDOW)
            await uow.commit()
            return True

    outcomes = await asyncio.gather(*(book(n) for n in range(4)))

    assert outcomes.count(True) == 1
    async with factory() as uow:
        stored = await uow.appointments.for_detainee(world.detainee.id)
    assert len(stored) == 1


async def test_concurrent_audit_appends_never_fork_the_chain(
    migrated_engine: AsyncEngine,
) -> None:
    factory = SqlUnitOfWorkFactory(migrated_engine)
    contentions = 0

    async def append(worker: int, rounds: int = 3) -> None:
        nonlocal contentions
        for r in range(rounds):
            for _attempt in range(20):
                try:
                    async with factory() as uow:
                        await uow.audit.head()
                        await asyncio.sleep(WINDOW / 5)
                        await uow.audit.append(
                            [event(10 * worker + r, worker=worker), event(99, worker=worker)]
                        )
                        await asyncio.sleep(WINDOW / 5)
                        await uow.commit()
                    break
                except ChainContention:
                    contentions += 1
            else:
                raise AssertionError("never got to append")

    await asyncio.gather(append(1), append(2))

    async with factory() as uow:
        records = await uow.audit.records()
    verdict = verify_chain(records)
    assert verdict.ok, verdict
    assert [r.seq for r in records] == list(range(1, 13))
    # Each unit of work's two events stay next to each other.
    assert all(records[i].data["worker"] == records[i + 1].data["worker"] for i in range(0, 12, 2))
    if migrated_engine.dialect.name == "sqlite":
        assert contentions == 0  # BEGIN IMMEDIATE: the second waits instead of contending


async def test_a_contended_append_fails_with_a_conflict_rather_than_forking(
    migrated_engine: AsyncEngine,
) -> None:
    """Two units of work read the same head; only one of them may extend it."""
    factory = SqlUnitOfWorkFactory(migrated_engine)
    first_appended = asyncio.Event()
    results: list[str] = []

    async def first() -> None:
        async with factory() as uow:
            await uow.audit.append([event(1)])
            first_appended.set()
            await asyncio.sleep(WINDOW * 2)
            await uow.commit()
            results.append("first committed")

    async def second() -> None:
        await first_appended.wait()
        try:
            async with factory() as uow:
                await uow.audit.append([event(2)])
                await uow.commit()
                results.append("second committed")
        except ChainContention:
            results.append("second conflicted")

    await asyncio.gather(first(), second())

    async with factory() as uow:
        records = await uow.audit.records()
    assert verify_chain(records).ok
    if migrated_engine.dialect.name == "sqlite":
        # The second waits for the write lock at BEGIN, then appends after the first.
        assert results == ["first committed", "second committed"]
        assert [r.seq for r in records] == [1, 2]
    else:
        # The second read the old head, waits on the seq key, then loses.
        assert results == ["first committed", "second conflicted"]
        assert [r.seq for r in records] == [1]
