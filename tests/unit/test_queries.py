"""The console's read side and the admin use cases, on the in-memory store."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from sessions.errors import NotFound, PermissionDenied
from sessions.events import EventName, officer_actor
from sessions.facilities import FacilityKind
from sessions.memory import MemoryUnitOfWorkFactory
from sessions.officers import Role
from sessions.queries import ConsoleQueries
from sessions.visits import VisitState
from tests.support.domain import World, build_world, visitor


@pytest.fixture
async def world() -> World:
    return await build_world(MemoryUnitOfWorkFactory())


def queries(world: World) -> ConsoleQueries:
    return ConsoleQueries(world.service.uow, world.clock)


async def test_queues_sort_applications_by_what_must_happen_next(world: World) -> None:
    service, officers = world.service, world.officers
    fresh = await service.submit_application(
        facility_id=world.facility.id,
        detainee_name="张伟",
        visitors=[visitor()],
        reason="other",
        reason_detail="母亲年迈",
    )
    accepted = await service.submit_application(
        facility_id=world.facility.id,
        detainee_name="张伟",
        visitors=[visitor(sequence="222")],
        reason="family_emergency",
    )
    await service.accept(officers[Role.INTAKE].id, accepted.id)
    approved = await world.approved_application(visitor(sequence="333"))
    booked = await world.approved_application(visitor(sequence="444"))
    await service.schedule(
        officers[Role.DUTY].id, booked, world.kiosk_id, world.local(2026, 3, 2, 14)
    )

    q = await queries(world).queues(officers[Role.DUTY].id)
    assert [r.application.id for r in q.to_accept] == [fresh.id]
    assert [r.application.id for r in q.to_review] == [accepted.id]
    assert [r.application.id for r in q.to_schedule] == [approved]
    assert [r.application.id for r in q.today] == [booked]
    assert q.today[0].visit is not None and q.today[0].visit.state is VisitState.SCHEDULED
    assert q.overdue == [] and q.due_soon == []

    # Monday 2 March + 5 working days = Monday 9 March. On Friday 6 March one is left.
    world.clock.set(world.local(2026, 3, 6, 9))
    q = await queries(world).queues(officers[Role.DUTY].id)
    assert {r.application.id for r in q.due_soon} == {fresh.id, accepted.id}
    assert all(r.working_days_left == 1 for r in q.due_soon)
    # Tuesday 10 March: both open applications are overdue; decided ones never are.
    world.clock.set(world.local(2026, 3, 10, 9))
    q = await queries(world).queues(officers[Role.DUTY].id)
    assert {r.application.id for r in q.overdue} == {fresh.id, accepted.id}
    assert q.due_soon == [] and q.today == []


async def test_the_ledger_filters_by_local_date_and_shows_history(world: World) -> None:
    first = await world.approved_application()
    world.clock.set(world.local(2026, 3, 3, 23, 30))  # still 3 March in Shanghai
    second = await world.approved_application(visitor(sequence="555"))
    q = queries(world)
    duty = world.officers[Role.DUTY].id
    assert [r.application.id for r in await q.ledger(duty)] == [second, first]
    assert [r.application.id for r in await q.ledger(duty, date_from=date(2026, 3, 3))] == [second]
    assert [r.application.id for r in await q.ledger(duty, date_to=date(2026, 3, 2))] == [first]
    detail = await q.application(duty, first)
    assert [r.event for r in detail.history] == [
        EventName.APPLICATION_SUBMITTED.value,
        EventName.APPLICATION_ACCEPTED.value,
        EventName.APPLICATION_APPROVED.value,
    ]
    assert [n.kind.value for n in detail.notices] == [
        "application_received",
        "application_approved",
    ]


async def test_an_officer_never_sees_another_facilitys_application(world: World) -> None:
    other = await build_world(
        world.service.uow, kind=FacilityKind.DETENTION_HOUSE, username_prefix="other"
    )
    app_id = await world.approved_application()
    with pytest.raises(NotFound):
        await queries(world).application(other.officers[Role.DUTY].id, app_id)
    assert await queries(world).ledger(other.officers[Role.DUTY].id) == []


async def test_only_an_admin_changes_rules_kiosks_officers_and_detainee_facts(world: World) -> None:
    service, admin = world.service, world.officers[Role.ADMIN]
    rules = world.facility.rules.with_changes(max_visit_minutes=45)
    with pytest.raises(PermissionDenied):
        await service.update_facility_rules(world.officers[Role.LEADER].id, rules)
    updated = await service.update_facility_rules(admin.id, rules)
    assert updated.rules.max_visit_minutes == 45
    with pytest.raises(PermissionDenied):
        await service.register_kiosk(
            world.facility.id, "二号终端", actor=officer_actor(world.officers[Role.DUTY].id)
        )
    kiosk, token = await service.register_kiosk(
        world.facility.id, "二号终端", actor=officer_actor(admin.id)
    )
    assert (await service.kiosk_by_token(token)).id == kiosk.id

    detainee = world.detainee
    detainee.refuses_video_visits = True
    with pytest.raises(PermissionDenied):
        await service.update_detainee(world.officers[Role.REVIEWER].id, detainee)
    await service.update_detainee(admin.id, detainee)
    app = await service.submit_application(
        facility_id=world.facility.id,
        detainee_name="张伟",
        visitors=[visitor()],
        reason="distance_hardship",
    )
    brief = await service.review_brief(world.officers[Role.REVIEWER].id, app.id)
    assert [r.zh for r in brief.ineligible] == ["被会见人本人拒绝会见"]

    duty = world.officers[Role.DUTY]
    await service.set_officer_active(admin.id, duty.id, False)
    with pytest.raises(NotFound):
        await queries(world).queues(duty.id)
    async with service.uow() as uow:
        names = [r.event for r in await uow.audit.records()]
    assert EventName.FACILITY_RULES_CHANGED.value in names
    assert EventName.DETAINEE_UPDATED.value in names
    assert EventName.OFFICER_UPDATED.value in names


async def test_an_approved_visit_scheduled_for_later_today_is_in_todays_list(world: World) -> None:
    booked = await world.approved_application()
    await world.service.schedule(
        world.officers[Role.DUTY].id, booked, world.kiosk_id, world.clock.now() + timedelta(hours=2)
    )
    q = await queries(world).queues(world.officers[Role.DUTY].id)
    assert [r.application.id for r in q.today] == [booked]
