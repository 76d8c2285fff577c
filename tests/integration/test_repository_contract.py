"""The repository contract (sessions/repository.py), run on every backend.

The same tests run on the in-memory fake, SQLite and PostgreSQL, so the fake the unit tests
use cannot drift from the real storage.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest

from sessions.applications import (
    Application,
    ApplicationState,
    Relationship,
    Visitor,
    VisitReason,
)
from sessions.appointments import Appointment, Kiosk
from sessions.audit import verify_chain
from sessions.credentials import VisitCredential
from sessions.detainees import Detainee
from sessions.errors import Conflict
from sessions.events import Event, EventName, SubjectType
from sessions.facilities import (
    Facility,
    FacilityKind,
    FacilityRules,
    OpeningHours,
    QuotaPeriod,
    UnexpectedFacePolicy,
)
from sessions.notifications import Notice, NoticeKind
from sessions.officers import Officer, Role
from sessions.quotas import ExceptionKind, LeaderException
from sessions.visits import EndReason, Visit, VisitKind, VisitState
from sessions.workdays import CalendarOverride, Deadline

from .conftest import UowFactory

#: Microseconds on purpose: storage must not round them away.
T0 = datetime(2026, 3, 2, 1, 30, 15, 123456, tzinfo=UTC)
BEIJING = timezone(timedelta(hours=8))


class Boom(Exception):
    pass


@dataclass
class World:
    facility: Facility
    detainee: Detainee
    officer: Officer
    kiosk: Kiosk


def visitor(n: int, relationship: Relationship = Relationship.SPOUSE) -> Visitor:
    return Visitor(
        name=f"张{'三四五六七八'[n]}",
        id_number=f"11010519491231{n:03d}X",
        phone=f"1380013800{n}",
        relationship=relationship,
        id_photo_ref=f"photos/{n}.jpg",
    )


def application(world: World, number: str = "20260302-000001", **changes: object) -> Application:
    app = Application(
        id=f"app-{number}",
        number=number,
        facility_id=world.facility.id,
        detainee_id=world.detainee.id,
        visitors=[visitor(0), visitor(1, Relationship.CHILD)],
        reason=VisitReason.DISTANCE_HARDSHIP,
        reason_detail="路途遥远",
        submitted_at=T0,
        deadline=Deadline(date(2026, 3, 9)),
    )
    return replace(app, **changes)  # type: ignore[arg-type]


def appointment(
    world: World, id: str, start: datetime, minutes: int = 30, *, cancelled: bool = False
) -> Appointment:
    return Appointment(
        id=id,
        facility_id=world.facility.id,
        kiosk_id=world.kiosk.id,
        application_id="app-20260302-000001",
        detainee_id=world.detainee.id,
        starts_at=start,
        ends_at=start + timedelta(minutes=minutes),
        booked_by=world.officer.id,
        cancelled=cancelled,
    )


def visit(world: World, id: str = "visit-1", appointment_id: str = "appt-1") -> Visit:
    return Visit(
        id=id,
        facility_id=world.facility.id,
        appointment_id=appointment_id,
        application_id="app-20260302-000001",
        kiosk_id=world.kiosk.id,
        kind=VisitKind.FAMILY,
        limit_minutes=30,
    )


def credential(visit_id: str, id: str, token_hash: str, valid_from: datetime) -> VisitCredential:
    return VisitCredential(
        id=id,
        visit_id=visit_id,
        facility_id="fac-1",
        token_hash=token_hash,
        code_hash="$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        valid_from=valid_from,
        valid_until=valid_from + timedelta(minutes=45),
    )


def event(n: int, subject_id: str = "app-1", **data: object) -> Event:
    return Event.of(
        EventName.APPLICATION_SUBMITTED,
        SubjectType.APPLICATION,
        subject_id,
        actor="officer:off-1",
        at=T0 + timedelta(seconds=n),
        facility_id="fac-1",
        n=n,
        **data,
    )


async def seed(uow_factory: UowFactory) -> World:
    world = World(
        facility=Facility(
            id="fac-1",
            name="第一看守所",
            kind=FacilityKind.DETENTION_CENTRE,
            rules=FacilityRules(
                visits_per_period=3,
                period=QuotaPeriod.WHOLE_DETENTION,
                max_visit_minutes=45,
                max_people=4,
                unexpected_face_policy=UnexpectedFacePolicy.AUTO_CUT,
                opening_hours=OpeningHours(((time(9, 0), time(11, 30)), (time(13, 15), time(16)))),
            ),
            time_zone="Asia/Urumqi",
        ),
        detainee=Detainee(
            id="det-1",
            facility_id="fac-1",
            name="李四",
            admitted_on=date(2026, 1, 15),
            released_on=date(2026, 7, 1),
            refuses_video_visits=True,
            strict_management=False,
            serious_violation=True,
            foreign_national=False,
            in_detox_treatment=True,
            pending_criminal_transfer=False,
            photo_ref="detainees/det-1.jpg",
        ),
        officer=Officer(
            id="off-1",
            facility_id="fac-1",
            username="wang.duty",
            display_name="王警官",
            password_hash="$argon2id$hash",
            roles=frozenset({Role.DUTY, Role.REVIEWER}),
            active=True,
        ),
        kiosk=Kiosk(id="kiosk-1", facility_id="fac-1", name="一号终端", device_token_hash="a" * 64),
    )
    async with uow_factory() as uow:
        await uow.facilities.add(world.facility)
        await uow.detainees.add(world.detainee)
        await uow.officers.add(world.officer)
        await uow.kiosks.add(world.kiosk)
        await uow.applications.add(application(world))
        await uow.commit()
    return world


# --- round trips ------------------------------------------------------------------------------


async def test_a_facility_round_trips_every_rule(uow_factory: UowFactory) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        assert await uow.facilities.get("fac-1") == world.facility
        assert await uow.facilities.get("nope") is None
        other = Facility.new("fac-0", "Another", FacilityKind.DRUG_REHAB)
        await uow.facilities.add(other)
        changed = replace(
            world.facility, rules=world.facility.rules.with_changes(max_people=2), name="新名称"
        )
        await uow.facilities.update(changed)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.facilities.list() == [other, changed]


@pytest.mark.parametrize(
    "windows",
    [
        (),
        ((time(8, 30), time(12, 0)),),
        ((time(8, 0, 30), time(9, 0)), (time(20, 0), time.max)),
    ],
    ids=["no-windows", "minutes", "seconds-and-midnight"],
)
async def test_opening_hours_round_trip_exactly(
    uow_factory: UowFactory, windows: tuple[tuple[time, time], ...]
) -> None:
    rules = FacilityRules(2, QuotaPeriod.CALENDAR_MONTH, 30, opening_hours=OpeningHours(windows))
    facility = Facility("fac-9", "夜间所", FacilityKind.DETENTION_HOUSE, rules)
    async with uow_factory() as uow:
        await uow.facilities.add(facility)
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.facilities.get("fac-9")
    assert stored is not None and stored.rules.opening_hours.windows == windows


async def test_a_detainee_round_trips_and_is_listed_by_facility_and_found_by_name(
    uow_factory: UowFactory,
) -> None:
    world = await seed(uow_factory)
    plain = Detainee(id="det-2", facility_id="fac-1", name="Zhao", admitted_on=date(2026, 2, 1))
    async with uow_factory() as uow:
        await uow.detainees.add(plain)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.detainees.get("det-1") == world.detainee
        assert await uow.detainees.get("det-2") == plain
        assert await uow.detainees.list_by_facility("fac-1") == [plain, world.detainee]
        assert await uow.detainees.find_by_name("fac-1", "李四") == [world.detainee]
        assert await uow.detainees.find_by_name("fac-1", "李") == []
        released = replace(plain, released_on=date(2026, 3, 1), refuses_video_visits=True)
        await uow.detainees.update(released)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.detainees.get("det-2") == released


async def test_an_officer_round_trips_with_frozenset_roles_and_is_found_by_username(
    uow_factory: UowFactory,
) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        found = await uow.officers.get_by_username("wang.duty")
        assert found == world.officer
        assert found is not None and found.roles == frozenset({Role.DUTY, Role.REVIEWER})
        assert await uow.officers.get("off-1") == world.officer
        assert await uow.officers.get_by_username("nobody") is None
        leader = Officer("off-2", "fac-1", "a.leader", "所长", "h", frozenset({Role.LEADER}), False)
        await uow.officers.add(leader)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.officers.list_by_facility("fac-1") == [leader, world.officer]
        promoted = replace(leader, roles=frozenset(Role), active=True)
        await uow.officers.update(promoted)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.officers.get("off-2") == promoted


async def test_a_kiosk_round_trips_and_is_found_by_its_token_hash(
    uow_factory: UowFactory,
) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        assert await uow.kiosks.get("kiosk-1") == world.kiosk
        assert await uow.kiosks.get_by_token_hash("a" * 64) == world.kiosk
        assert await uow.kiosks.get_by_token_hash("b" * 64) is None
        retired = replace(world.kiosk, active=False, name="旧终端")
        await uow.kiosks.update(retired)
        await uow.kiosks.lock_for_booking("kiosk-1")
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.kiosks.list_by_facility("fac-1") == [retired]


async def test_an_application_round_trips_visitors_in_order_exceptions_and_deadline(
    uow_factory: UowFactory,
) -> None:
    world = await seed(uow_factory)
    exceptions = [
        LeaderException(ExceptionKind.MORE_PEOPLE, "off-9", "家庭变故", T0, extra_people=2),
        LeaderException(
            ExceptionKind.LONGER_VISIT,
            "off-9",
            "病重",
            T0.astimezone(BEIJING) + timedelta(microseconds=1),
            extra_minutes=15,
        ),
    ]
    full = application(
        world,
        "20260302-000002",
        visitors=[visitor(3, Relationship.PARENT), visitor(0), visitor(2, Relationship.SIBLING)],
        reason=VisitReason.OTHER,
        state=ApplicationState.ACCEPTED,
        decided_by="off-1",
        decided_at=T0 + timedelta(days=1, microseconds=7),
        decision_reason="材料齐全",
        exceptions=exceptions,
        deadline=Deadline(date(2027, 1, 8), unconfirmed_years=(2027, 2028)),
        version=3,
    )
    async with uow_factory() as uow:
        await uow.applications.add(full)
        await uow.commit()
    async with uow_factory() as uow:
        by_id = await uow.applications.get(full.id)
        by_number = await uow.applications.get_by_number("20260302-000002")
        assert await uow.applications.get("nope") is None
        assert await uow.applications.get_by_number("nope") is None
    assert by_id == full
    assert by_number == full
    assert by_id is not None
    assert [v.id_number for v in by_id.visitors] == [v.id_number for v in full.visitors]
    assert by_id.deadline.is_estimate and by_id.deadline.unconfirmed_years == (2027, 2028)
    assert by_id.decided_at is not None and by_id.decided_at.tzinfo is not None
    assert by_id.decided_at.microsecond == 123463
    assert by_id.exceptions[1].granted_at == exceptions[1].granted_at
    assert by_id.events == []


async def test_updating_an_application_replaces_its_visitors_and_bumps_the_version(
    uow_factory: UowFactory,
) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        app = await uow.applications.get("app-20260302-000001")
        assert app is not None and app.version == 0
        app.visitors = [visitor(4)]
        app.state = ApplicationState.RETURNED
        app.exceptions.append(LeaderException(ExceptionKind.EXTRA_VISIT, "off-1", "特殊", T0))
        await uow.applications.update(app)
        assert app.version == 1
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.applications.get("app-20260302-000001")
    assert stored == replace(
        application(world),
        visitors=[visitor(4)],
        state=ApplicationState.RETURNED,
        exceptions=[LeaderException(ExceptionKind.EXTRA_VISIT, "off-1", "特殊", T0)],
        version=1,
    )


#: 1024 bytes like a stored encoding, with every byte value (NULs included).
ENCODING = bytes(range(256)) * 4


async def test_a_visitors_face_encoding_round_trips_bytes_exact_or_none(
    uow_factory: UowFactory,
) -> None:
    world = await seed(uow_factory)
    enrolled = replace(visitor(3), face_encoding=ENCODING)
    app = application(world, "20260302-000003", visitors=[enrolled, visitor(2)])
    async with uow_factory() as uow:
        await uow.applications.add(app)
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.applications.get(app.id)
        assert stored is not None
        assert stored == app
        first, second = stored.visitors
        assert type(first.face_encoding) is bytes and first.face_encoding == ENCODING
        assert second.face_encoding is None
        stored.visitors = [
            replace(first, face_encoding=None),
            replace(second, face_encoding=b"\1" * 1024),
        ]
        await uow.applications.update(stored)
        await uow.commit()
    async with uow_factory() as uow:
        again = await uow.applications.get(app.id)
    assert again is not None
    assert [v.face_encoding for v in again.visitors] == [None, b"\1" * 1024]


async def test_a_detainees_face_encoding_round_trips_bytes_exact_set_replaced_or_none(
    uow_factory: UowFactory,
) -> None:
    world = await seed(uow_factory)
    enrolled = Detainee(
        id="det-3",
        facility_id="fac-1",
        name="钱七",
        admitted_on=date(2026, 2, 1),
        photo_ref="fac-1/" + "a" * 32 + ".jpg",
        face_encoding=ENCODING,
    )
    async with uow_factory() as uow:
        await uow.detainees.add(enrolled)
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.detainees.get("det-3")
        plain = await uow.detainees.get("det-1")
        listed = await uow.detainees.list_by_facility("fac-1")
        found = await uow.detainees.find_by_name("fac-1", "钱七")
    assert stored == enrolled
    assert stored is not None and type(stored.face_encoding) is bytes
    assert stored.face_encoding == ENCODING
    assert plain == world.detainee and plain.face_encoding is None
    assert [d.face_encoding for d in listed if d.id == "det-3"] == [ENCODING]
    assert [type(d.face_encoding) for d in found] == [bytes]

    # Enrolling a detainee registered without one, and replacing one.
    async with uow_factory() as uow:
        await uow.detainees.update(replace(world.detainee, face_encoding=b"\1" * 1024))
        await uow.detainees.update(replace(enrolled, face_encoding=b"\0" * 1024))
        await uow.commit()
    async with uow_factory() as uow:
        first = await uow.detainees.get("det-1")
        third = await uow.detainees.get("det-3")
    assert first is not None and first.face_encoding == b"\1" * 1024
    assert third is not None and third.face_encoding == b"\0" * 1024

    async with uow_factory() as uow:
        await uow.detainees.update(replace(enrolled, face_encoding=None))
        await uow.commit()
    async with uow_factory() as uow:
        cleared = await uow.detainees.get("det-3")
    assert cleared is not None and cleared.face_encoding is None


async def test_an_appointment_round_trips(uow_factory: UowFactory) -> None:
    world = await seed(uow_factory)
    appt = appointment(world, "appt-1", T0.astimezone(BEIJING))
    async with uow_factory() as uow:
        await uow.appointments.add(appt)
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.appointments.get("appt-1")
        assert stored == appt
        assert stored is not None and stored.starts_at.utcoffset() is not None
        assert await uow.appointments.get("nope") is None
        await uow.appointments.update(replace(appt, cancelled=True))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.appointments.get("appt-1") == replace(appt, cancelled=True)


async def test_a_visit_round_trips_its_live_and_end_fields(uow_factory: UowFactory) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        await uow.appointments.add(appointment(world, "appt-1", T0))
        await uow.appointments.add(appointment(world, "appt-2", T0 + timedelta(hours=1)))
        await uow.visits.add(visit(world))
        lawyer = replace(
            visit(world, "visit-2", "appt-2"), application_id=None, kind=VisitKind.LAWYER
        )
        await uow.visits.add(lawyer)
        await uow.commit()
    async with uow_factory() as uow:
        fresh = await uow.visits.get("visit-1")
        assert fresh == visit(world)
        assert await uow.visits.get("visit-2") == lawyer
        assert fresh is not None
        for step in (fresh.enter_lobby, fresh.start_connection, fresh.begin_identity_check):
            step("officer:off-1", T0)
        fresh.go_live("officer:off-1", T0 + timedelta(seconds=1, microseconds=999))
        fresh.end(EndReason.OFFICER_CUT, "officer:off-1", T0 + timedelta(minutes=7), note="违规")
        await uow.visits.update(fresh)
        assert fresh.version == 1
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.visits.get_by_appointment("appt-1")
        assert await uow.visits.get_by_appointment("appt-9") is None
    assert stored is not None
    assert stored == replace(fresh, events=[])
    assert stored.state is VisitState.ENDED and stored.end_reason is EndReason.OFFICER_CUT
    assert stored.live_at == T0 + timedelta(seconds=1, microseconds=999)
    assert stored.ended_by == "officer:off-1" and stored.end_note == "违规"
    assert stored.elapsed(T0 + timedelta(hours=5)) == fresh.elapsed(T0 + timedelta(hours=5))
    assert stored.events == []


async def test_visits_are_listed_by_state(uow_factory: UowFactory) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        for n in (1, 2, 3):
            await uow.appointments.add(appointment(world, f"appt-{n}", T0 + timedelta(hours=n)))
        await uow.visits.add(visit(world, "v-c", "appt-3"))
        await uow.visits.add(replace(visit(world, "v-a", "appt-1"), state=VisitState.LIVE))
        await uow.visits.add(replace(visit(world, "v-b", "appt-2"), state=VisitState.LOBBY))
        await uow.commit()
    async with uow_factory() as uow:
        waiting = await uow.visits.list_by_state(
            "fac-1", frozenset({VisitState.LIVE, VisitState.SCHEDULED})
        )
        assert [v.id for v in waiting] == ["v-a", "v-c"]
        assert await uow.visits.list_by_state("fac-2", frozenset(VisitState)) == []


async def test_a_credential_round_trips_and_is_listed_by_visit_in_validity_order(
    uow_factory: UowFactory,
) -> None:
    world = await seed(uow_factory)
    later = credential("visit-1", "cred-2", "t2", T0 + timedelta(minutes=5))
    earlier = credential("visit-1", "cred-1", "t1", T0)
    async with uow_factory() as uow:
        await uow.appointments.add(appointment(world, "appt-1", T0))
        await uow.visits.add(visit(world))
        await uow.credentials.add(later)
        await uow.credentials.add(earlier)
        await uow.commit()
    used = replace(
        earlier,
        consecutive_failures=2,
        total_failures=7,
        locked_until=T0 + timedelta(minutes=15, microseconds=5),
        first_used_at=T0 + timedelta(microseconds=1),
        revoked_at=T0 + timedelta(hours=1),
        revoked_reason="visit ended",
    )
    async with uow_factory() as uow:
        assert await uow.credentials.get_by_token_hash("t2") == later
        assert await uow.credentials.get_by_token_hash("t3") is None
        await uow.credentials.update(used)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.credentials.for_visit("visit-1") == [used, later]
        assert await uow.credentials.for_visit("visit-2") == []


async def test_objects_come_back_detached_without_pending_events(uow_factory: UowFactory) -> None:
    world = await seed(uow_factory)
    with_events = appointment(world, "appt-1", T0)
    with_events.events.append(event(1))
    async with uow_factory() as uow:
        await uow.appointments.add(with_events)
        await uow.commit()
    async with uow_factory() as uow:
        first = await uow.appointments.get("appt-1")
        assert first is not None and first.events == []
        first.cancelled = True  # not saved
        again = await uow.appointments.get("appt-1")
        assert again is not None and again is not first and not again.cancelled


# --- transactions -----------------------------------------------------------------------------


async def test_nothing_is_written_without_commit(uow_factory: UowFactory) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        await uow.appointments.add(appointment(world, "appt-1", T0))
        await uow.audit.append([event(1)])
        await uow.calendar.put(CalendarOverride(date(2026, 10, 8), False))
    async with uow_factory() as uow:
        assert await uow.appointments.get("appt-1") is None
        assert await uow.audit.head() is None
        assert await uow.calendar.list() == []


async def test_an_exception_inside_the_block_rolls_back_everything_of_that_unit_of_work(
    uow_factory: UowFactory,
) -> None:
    world = await seed(uow_factory)
    with pytest.raises(Boom):
        async with uow_factory() as uow:
            app = await uow.applications.get("app-20260302-000001")
            assert app is not None
            app.state = ApplicationState.ACCEPTED
            await uow.applications.update(app)
            await uow.detainees.update(replace(world.detainee, name="改名"))
            await uow.audit.append([event(1)])
            raise Boom
    async with uow_factory() as uow:
        assert await uow.applications.get("app-20260302-000001") == application(world)
        assert await uow.detainees.get("det-1") == world.detainee
        assert await uow.audit.records() == []


async def test_rollback_after_commit_is_a_no_op_and_both_may_be_repeated(
    uow_factory: UowFactory,
) -> None:
    world = await seed(uow_factory)
    uow = uow_factory()
    async with uow:
        await uow.appointments.add(appointment(world, "appt-1", T0))
        await uow.commit()
        await uow.rollback()
    await uow.rollback()
    with pytest.raises(RuntimeError):
        await uow.commit()
    async with uow_factory() as again:
        assert await again.appointments.get("appt-1") is not None


async def test_a_conflict_leaves_the_unit_of_work_usable(uow_factory: UowFactory) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        with pytest.raises(Conflict):
            await uow.officers.add(replace(world.officer, id="off-2"))
        await uow.appointments.add(appointment(world, "appt-1", T0))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.appointments.get("appt-1") is not None
        assert await uow.officers.get("off-2") is None


# --- conflicts --------------------------------------------------------------------------------


async def test_a_stale_application_update_is_a_conflict(uow_factory: UowFactory) -> None:
    await seed(uow_factory)
    async with uow_factory() as uow:
        stale = await uow.applications.get("app-20260302-000001")
    assert stale is not None
    async with uow_factory() as uow:
        fresh = await uow.applications.get("app-20260302-000001")
        assert fresh is not None
        fresh.state = ApplicationState.ACCEPTED
        await uow.applications.update(fresh)
        await uow.commit()
    stale.state = ApplicationState.RETURNED
    async with uow_factory() as uow:
        with pytest.raises(Conflict) as caught:
            await uow.applications.update(stale)
        assert caught.value.code == "stale_write"
        assert stale.version == 0
    async with uow_factory() as uow:
        stored = await uow.applications.get("app-20260302-000001")
    assert stored is not None
    assert (stored.state, stored.version) == (ApplicationState.ACCEPTED, 1)


async def test_a_stale_visit_update_is_a_conflict(uow_factory: UowFactory) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        await uow.appointments.add(appointment(world, "appt-1", T0))
        await uow.visits.add(visit(world))
        await uow.commit()
    async with uow_factory() as uow:
        first = await uow.visits.get("visit-1")
        assert first is not None
        first.enter_lobby("relative", T0)
        await uow.visits.update(first)
        await uow.commit()
    second = visit(world)  # still at version 0
    second.end(EndReason.OFFICER_CUT, "officer:off-1", T0)
    async with uow_factory() as uow:
        with pytest.raises(Conflict):
            await uow.visits.update(second)
    async with uow_factory() as uow:
        stored = await uow.visits.get("visit-1")
    assert stored is not None and (stored.state, stored.version) == (VisitState.LOBBY, 1)


async def test_a_duplicate_username_is_a_conflict(uow_factory: UowFactory) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        with pytest.raises(Conflict) as caught:
            await uow.officers.add(replace(world.officer, id="off-2", display_name="同名"))
    assert caught.value.code == "username_taken"


async def test_a_duplicate_credential_token_hash_is_a_conflict(uow_factory: UowFactory) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        await uow.appointments.add(appointment(world, "appt-1", T0))
        await uow.visits.add(visit(world))
        await uow.credentials.add(credential("visit-1", "cred-1", "same", T0))
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(Conflict) as caught:
            await uow.credentials.add(credential("visit-1", "cred-2", "same", T0))
    assert caught.value.code == "duplicate_token"


async def test_a_duplicate_kiosk_token_hash_is_a_conflict(uow_factory: UowFactory) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        with pytest.raises(Conflict) as caught:
            await uow.kiosks.add(replace(world.kiosk, id="kiosk-2", name="二号终端"))
    assert caught.value.code == "duplicate_device_token"


async def test_a_duplicate_application_number_is_a_conflict(uow_factory: UowFactory) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        with pytest.raises(Conflict) as caught:
            await uow.applications.add(application(world, id="other-id"))
    assert caught.value.code == "duplicate_number"


async def test_a_second_visit_for_the_same_appointment_is_a_conflict(
    uow_factory: UowFactory,
) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        await uow.appointments.add(appointment(world, "appt-1", T0))
        await uow.visits.add(visit(world))
        with pytest.raises(Conflict) as caught:
            await uow.visits.add(visit(world, id="visit-2"))
    assert caught.value.code == "visit_exists"


async def test_adding_an_existing_id_is_a_conflict_and_updating_a_missing_one_too(
    uow_factory: UowFactory,
) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        with pytest.raises(Conflict):
            await uow.facilities.add(replace(world.facility, name="again"))
        with pytest.raises(Conflict):
            await uow.detainees.update(replace(world.detainee, id="det-404"))
        with pytest.raises(Conflict):
            await uow.appointments.update(appointment(world, "appt-404", T0))


# --- queries ------------------------------------------------------------------------------------


async def test_overlapping_finds_exactly_the_intersecting_non_cancelled_appointments(
    uow_factory: UowFactory,
) -> None:
    world = await seed(uow_factory)
    nine = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    async with uow_factory() as uow:
        other_kiosk = Kiosk("kiosk-2", "fac-1", "二号终端", "b" * 64)
        await uow.kiosks.add(other_kiosk)
        await uow.appointments.add(
            appointment(world, "before-touching", nine - timedelta(minutes=30))
        )
        await uow.appointments.add(
            appointment(world, "straddles-start", nine - timedelta(minutes=10))
        )
        await uow.appointments.add(appointment(world, "inside", nine + timedelta(minutes=10), 5))
        await uow.appointments.add(
            appointment(world, "straddles-end", nine + timedelta(minutes=25))
        )
        await uow.appointments.add(
            appointment(world, "after-touching", nine + timedelta(minutes=30))
        )
        await uow.appointments.add(appointment(world, "cancelled", nine, cancelled=True))
        await uow.appointments.add(
            replace(appointment(world, "other-kiosk", nine), kiosk_id="kiosk-2")
        )
        await uow.commit()
    async with uow_factory() as uow:
        found = await uow.appointments.overlapping("kiosk-1", nine, nine + timedelta(minutes=30))
        assert [a.id for a in found] == ["straddles-start", "inside", "straddles-end"]
        # A slot in another time zone is the same instant.
        local = nine.astimezone(BEIJING)
        same = await uow.appointments.overlapping("kiosk-1", local, local + timedelta(minutes=30))
        assert same == found
        assert (
            await uow.appointments.overlapping(
                "kiosk-1", nine + timedelta(hours=2), nine + timedelta(hours=3)
            )
            == []
        )


async def test_for_detainee_lists_non_cancelled_appointments_by_start_time(
    uow_factory: UowFactory,
) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        await uow.detainees.add(Detainee("det-2", "fac-1", "王五", date(2026, 1, 1)))
        await uow.appointments.add(appointment(world, "c", T0 + timedelta(days=2)))
        await uow.appointments.add(appointment(world, "a", T0 + timedelta(microseconds=1)))
        await uow.appointments.add(appointment(world, "x", T0 + timedelta(days=1), cancelled=True))
        await uow.appointments.add(appointment(world, "b", T0 + timedelta(days=1)))
        await uow.appointments.add(replace(appointment(world, "other", T0), detainee_id="det-2"))
        await uow.commit()
    async with uow_factory() as uow:
        assert [a.id for a in await uow.appointments.for_detainee("det-1")] == ["a", "b", "c"]
        assert [a.id for a in await uow.appointments.for_detainee("det-2")] == ["other"]


async def test_listing_applications_filters_by_states_and_submission_range_oldest_first(
    uow_factory: UowFactory,
) -> None:
    world = await seed(uow_factory)  # "…000001", submitted at T0, SUBMITTED
    async with uow_factory() as uow:
        await uow.facilities.add(Facility.new("fac-2", "Other", FacilityKind.DETENTION_HOUSE))
        await uow.applications.add(
            application(
                world, "b", submitted_at=T0 + timedelta(days=1), state=ApplicationState.ACCEPTED
            )
        )
        await uow.applications.add(
            application(
                world, "c", submitted_at=T0 - timedelta(days=1), state=ApplicationState.REJECTED
            )
        )
        await uow.applications.add(application(world, "a", submitted_at=T0 + timedelta(days=1)))
        await uow.applications.add(application(world, "z", facility_id="fac-2"))
        await uow.commit()
    apps = ("fac-1",)
    async with uow_factory() as uow:
        everything = await uow.applications.list(*apps)
        assert [a.number for a in everything] == ["c", "20260302-000001", "a", "b"]
        open_ = await uow.applications.list(
            *apps, states=frozenset({ApplicationState.SUBMITTED, ApplicationState.ACCEPTED})
        )
        assert [a.number for a in open_] == ["20260302-000001", "a", "b"]
        window = await uow.applications.list(
            *apps, submitted_from=T0, submitted_before=T0 + timedelta(days=1)
        )
        assert [a.number for a in window] == ["20260302-000001"]
        assert await uow.applications.list(*apps, states=frozenset()) == []
        both = await uow.applications.list(
            *apps,
            states=frozenset({ApplicationState.SUBMITTED}),
            submitted_from=(T0 + timedelta(microseconds=1)).astimezone(BEIJING),
        )
        assert [a.number for a in both] == ["a"]
        assert [a.visitors for a in everything] == [application(world).visitors] * 4


# --- audit ----------------------------------------------------------------------------------


async def test_audit_append_chains_across_units_of_work_and_the_chain_verifies(
    uow_factory: UowFactory,
) -> None:
    async with uow_factory() as uow:
        first = await uow.audit.append([event(1), event(2)])
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.audit.head() == first[-1]
        second = await uow.audit.append([event(3, subject_id="app-2")])
        assert await uow.audit.append([]) == []
        await uow.commit()
    assert [r.seq for r in first + second] == [1, 2, 3]
    assert second[0].prev_hash == first[-1].hash
    async with uow_factory() as uow:
        records = await uow.audit.records()
        assert records == first + second
        assert verify_chain(records).ok and verify_chain(records).checked == 3
        assert await uow.audit.records(after_seq=1, limit=1) == [first[1]]
        assert await uow.audit.records(after_seq=3) == []
        assert await uow.audit.for_subject("application", "app-2") == second
        assert await uow.audit.for_subject("visit", "app-2") == []


async def test_the_audit_data_dict_round_trips_exactly(uow_factory: UowFactory) -> None:
    data: dict[str, Any] = {
        "reason": "家庭发生变故、灾害等特殊情况急需会见",
        "nested": {"列表": [1, 2.5, None, True, "¥", {"deep": []}], "empty": {}},
        "big": 2**53 + 1,
        "float": 0.1 + 0.2,
        "quote": 'a "b" \\ c\n\t',
        "emoji": "🙂",
    }
    async with uow_factory() as uow:
        (sealed,) = await uow.audit.append([event(1, **data)])
        await uow.commit()
    async with uow_factory() as uow:
        (stored,) = await uow.audit.records()
    assert stored == sealed
    assert stored.data == {"n": 1, **data}
    assert stored.at == T0 + timedelta(seconds=1) and stored.at.tzinfo is not None
    assert verify_chain([stored]).ok


# --- calendar ---------------------------------------------------------------------------------


async def test_calendar_put_replaces_remove_deletes_and_list_filters_by_year(
    uow_factory: UowFactory,
) -> None:
    national_day = CalendarOverride(date(2027, 10, 1), False, "国庆节")
    async with uow_factory() as uow:
        await uow.calendar.put(national_day)
        await uow.calendar.put(CalendarOverride(date(2026, 12, 31), False, "旧"))
        await uow.calendar.put(CalendarOverride(date(2027, 1, 1), False))
        await uow.calendar.put(CalendarOverride(date(2027, 9, 26), True, "调休上班"))
        await uow.commit()
    makeup = CalendarOverride(date(2026, 12, 31), True, "改为上班")
    async with uow_factory() as uow:
        await uow.calendar.put(makeup)
        await uow.calendar.remove(date(2027, 1, 1))
        await uow.calendar.remove(date(2030, 1, 1))  # not there: no error
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.calendar.list() == [
            makeup,
            CalendarOverride(date(2027, 9, 26), True, "调休上班"),
            national_day,
        ]
        assert await uow.calendar.list(2026) == [makeup]
        assert [o.day.month for o in await uow.calendar.list(2027)] == [9, 10]
        assert await uow.calendar.list(2028) == []


# --- outbox -----------------------------------------------------------------------------------


def notice(id: str, created_at: datetime, **changes: Any) -> Notice:
    made = Notice(
        id=id,
        kind=NoticeKind.APPLICATION_RECEIVED,
        application_id="app-20260302-000001",
        phone="13800138000",
        created_at=created_at,
    )
    return replace(made, **changes)


async def add_notices(uow_factory: UowFactory, *notices: Notice) -> None:
    async with uow_factory() as uow:
        for n in notices:
            await uow.outbox.add(n)
        await uow.commit()


async def test_a_notice_round_trips_every_field(uow_factory: UowFactory) -> None:
    await seed(uow_factory)
    fresh = notice("n-1", T0.astimezone(BEIJING))
    worked = notice(
        "n-2",
        T0 + timedelta(microseconds=1),
        kind=NoticeKind.VISIT_SCHEDULED,
        phone="+86 139 0013 9000",
        attempts=3,
        next_attempt_at=T0 + timedelta(minutes=2, microseconds=5),
        sent_at=T0 + timedelta(minutes=3),
        failed_at=T0 + timedelta(minutes=4),
        last_error="网关超时 HTTP 503",
    )
    await add_notices(uow_factory, fresh, worked)
    async with uow_factory() as uow:
        stored = await uow.outbox.for_application("app-20260302-000001")
    assert stored == [fresh, worked]
    assert [n.kind for n in stored] == [NoticeKind.APPLICATION_RECEIVED, NoticeKind.VISIT_SCHEDULED]
    assert all(isinstance(n.kind, NoticeKind) for n in stored)
    for got in stored:
        for instant in (got.created_at, got.next_attempt_at, got.sent_at, got.failed_at):
            assert instant is None or instant.utcoffset() is not None
    assert stored[1].next_attempt_at is not None
    assert stored[1].next_attempt_at.microsecond == 123461


@pytest.mark.parametrize("kind", list(NoticeKind))
async def test_every_notice_kind_round_trips(uow_factory: UowFactory, kind: NoticeKind) -> None:
    await seed(uow_factory)
    await add_notices(uow_factory, notice("n-1", T0, kind=kind))
    async with uow_factory() as uow:
        (stored,) = await uow.outbox.for_application("app-20260302-000001")
    assert stored.kind is kind


async def test_due_skips_sent_failed_and_backed_off_notices_oldest_first(
    uow_factory: UowFactory,
) -> None:
    await seed(uow_factory)
    now = T0 + timedelta(minutes=10)
    await add_notices(
        uow_factory,
        notice("n-new", T0),
        notice("n-later", T0 + timedelta(seconds=1), next_attempt_at=now + timedelta(seconds=1)),
        notice("n-ready", T0 + timedelta(seconds=2), attempts=2, next_attempt_at=now),
        notice("n-sent", T0 - timedelta(days=1), sent_at=T0),
        notice("n-failed", T0 - timedelta(days=1), attempts=8, failed_at=T0, last_error="x"),
        notice("n-oldest", T0 - timedelta(seconds=1)),
        notice("n-tie-b", T0 + timedelta(seconds=3)),
        notice("n-tie-a", T0 + timedelta(seconds=3)),
    )
    async with uow_factory() as uow:
        due = await uow.outbox.due(now, 10)
        assert [n.id for n in due] == ["n-oldest", "n-new", "n-ready", "n-tie-a", "n-tie-b"]
        assert [n.id for n in await uow.outbox.due(now, 2)] == ["n-oldest", "n-new"]
        at_retry = await uow.outbox.due(now + timedelta(seconds=1), 10)
        assert [n.id for n in at_retry] == [
            "n-oldest",
            "n-new",
            "n-later",
            "n-ready",
            "n-tie-a",
            "n-tie-b",
        ]
        assert await uow.outbox.due(T0 - timedelta(days=2), 10) != []  # no lower bound
        assert await uow.outbox.due(now, 0) == []


async def test_updating_a_notice_persists_attempts_back_off_and_the_outcome(
    uow_factory: UowFactory,
) -> None:
    await seed(uow_factory)
    await add_notices(uow_factory, notice("n-1", T0), notice("n-2", T0 + timedelta(seconds=1)))
    async with uow_factory() as uow:
        first, second = await uow.outbox.due(T0, 10)
        first.attempt_failed("gateway answered HTTP 503", T0)
        await uow.outbox.update(first)
        await uow.commit()
    async with uow_factory() as uow:
        stored = {n.id: n for n in await uow.outbox.for_application("app-20260302-000001")}
        backed_off = stored["n-1"]
        assert backed_off == first
        assert backed_off.attempts == 1
        assert backed_off.next_attempt_at == T0 + timedelta(seconds=30)
        assert backed_off.last_error == "gateway answered HTTP 503"
        assert backed_off.pending
        assert [n.id for n in await uow.outbox.due(T0, 10)] == ["n-2"]
        assert [n.id for n in await uow.outbox.due(T0 + timedelta(seconds=30), 10)] == [
            "n-1",
            "n-2",
        ]
        backed_off.delivered(T0 + timedelta(seconds=31))
        await uow.outbox.update(backed_off)
        await uow.commit()
    async with uow_factory() as uow:
        stored = {n.id: n for n in await uow.outbox.for_application("app-20260302-000001")}
        assert stored["n-1"].sent_at == T0 + timedelta(seconds=31)
        assert stored["n-1"].last_error is None and not stored["n-1"].pending
        assert stored["n-2"] == second
        assert [n.id for n in await uow.outbox.due(T0 + timedelta(hours=1), 10)] == ["n-2"]


async def test_outbox_writes_are_undone_without_commit(uow_factory: UowFactory) -> None:
    await seed(uow_factory)
    async with uow_factory() as uow:
        await uow.outbox.add(notice("n-1", T0))
    async with uow_factory() as uow:
        assert await uow.outbox.for_application("app-20260302-000001") == []


async def test_for_application_lists_only_that_applications_notices_oldest_first(
    uow_factory: UowFactory,
) -> None:
    world = await seed(uow_factory)
    async with uow_factory() as uow:
        await uow.applications.add(application(world, "20260302-000002"))
        await uow.commit()
    await add_notices(
        uow_factory,
        notice("n-3", T0 + timedelta(minutes=2), kind=NoticeKind.APPLICATION_APPROVED),
        notice("n-other", T0, application_id="app-20260302-000002"),
        notice("n-1", T0),
        notice("n-2", T0 + timedelta(minutes=1), sent_at=T0 + timedelta(minutes=1)),
    )
    async with uow_factory() as uow:
        mine = await uow.outbox.for_application("app-20260302-000001")
        theirs = await uow.outbox.for_application("app-20260302-000002")
        assert await uow.outbox.for_application("nope") == []
    assert [n.id for n in mine] == ["n-1", "n-2", "n-3"]
    assert [n.id for n in theirs] == ["n-other"]
