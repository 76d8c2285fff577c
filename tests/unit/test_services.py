"""The use cases end to end on the in-memory store: what an officer's clicks
and a relative's link do, and that a failed step leaves nothing behind."""

from __future__ import annotations

import ast
import pathlib
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet

from server.secrets import FernetSealer
from sessions.applications import ApplicationState
from sessions.credentials import IssuedSecrets
from sessions.errors import (
    CredentialRejected,
    InvalidTransition,
    PermissionDenied,
    RuleViolation,
    ValidationError,
)
from sessions.events import EventName
from sessions.facilities import FacilityKind
from sessions.memory import MemoryStore, MemoryUnitOfWorkFactory
from sessions.notifications import NoticeKind
from sessions.officers import Role
from sessions.passwords import Argon2Hasher
from sessions.quotas import ExceptionKind
from sessions.services import VisitGateService
from sessions.visits import EndReason, VisitState
from tests.support.domain import PASSWORD, World, build_world, visitor

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
async def world() -> World:
    return await build_world(MemoryUnitOfWorkFactory())


async def schedule_at(world: World, hour: int, day: int = 2) -> tuple[str, str, str]:
    app_id = await world.approved_application()
    scheduled = await world.service.schedule(
        world.officers[Role.DUTY].id, app_id, world.kiosk_id, world.local(2026, 3, day, hour)
    )
    return scheduled.visit.id, scheduled.secrets.token, scheduled.secrets.code


async def audit_names(world: World) -> list[str]:
    async with world.service.uow() as uow:
        return [r.event for r in await uow.audit.records()]


def test_the_domain_imports_no_transport_or_storage_library() -> None:
    forbidden = {
        "aiohttp",
        "aiortc",
        "sqlalchemy",
        "asyncpg",
        "aiosqlite",
        "redis",
        "alembic",
        "av",
    }
    domain = [p for p in (ROOT / "sessions").rglob("*.py") if "adapters" not in p.parts]
    assert len(domain) > 20
    for path in domain:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


async def test_the_whole_path_from_application_to_a_timed_out_visit(world: World) -> None:
    visit_id, token, code = await schedule_at(world, 10)
    world.clock.set(world.local(2026, 3, 2, 9, 50))
    visit = await world.service.join_visit(token, code)
    assert visit.state is VisitState.LOBBY
    await world.service.start_connection(world.officers[Role.DUTY].id, visit_id)
    await world.service.advance_visit(visit_id, VisitState.IDENTITY_CHECK, "system")
    live = await world.service.advance_visit(visit_id, VisitState.LIVE, "system")
    assert live.limit_minutes == 60 and live.live_at == world.clock.now()

    world.clock.advance(timedelta(minutes=59))
    assert await world.service.end_overdue_visits(world.facility.id) == []
    world.clock.advance(timedelta(minutes=1))
    [ended] = await world.service.end_overdue_visits(world.facility.id)
    assert ended.end_reason is EndReason.TIME_LIMIT
    assert ended.elapsed(world.clock.now()) == timedelta(minutes=60)

    names = await audit_names(world)
    for expected in (
        EventName.APPLICATION_SUBMITTED,
        EventName.APPLICATION_ACCEPTED,
        EventName.APPLICATION_APPROVED,
        EventName.APPOINTMENT_BOOKED,
        EventName.APPLICATION_SCHEDULED,
        EventName.CREDENTIAL_ISSUED,
        EventName.VISIT_LOBBY_ENTERED,
        EventName.VISIT_CONNECTING,
        EventName.VISIT_WENT_LIVE,
        EventName.VISIT_ENDED,
        EventName.CREDENTIAL_REVOKED,
    ):
        assert expected.value in names
    assert (await world.service.verify_ledger()).ok


async def test_a_restarted_service_sees_the_same_remaining_time_and_rejoining_never_resets_it(
    world: World,
) -> None:
    visit_id, token, code = await schedule_at(world, 10)
    world.clock.set(world.local(2026, 3, 2, 10, 0))
    await world.service.join_visit(token, code)
    await world.service.start_connection(world.officers[Role.DUTY].id, visit_id)
    await world.service.advance_visit(visit_id, VisitState.IDENTITY_CHECK, "system")
    await world.service.advance_visit(visit_id, VisitState.LIVE, "system")
    world.clock.advance(timedelta(minutes=25))

    rejoined = await world.service.join_visit(token, code)
    assert rejoined.state is VisitState.LIVE
    assert rejoined.remaining(world.clock.now()) == timedelta(minutes=35)

    # A new process: a new service over the same store and a clock read afresh.
    restarted = VisitGateService(world.service.uow, world.clock, world.service.hasher)
    world.clock.advance(timedelta(minutes=5))
    visit = await restarted.get_visit(visit_id)
    assert visit.remaining(world.clock.now()) == timedelta(minutes=30)


async def test_wrong_codes_are_counted_even_though_the_call_fails_and_then_lock_the_link(
    world: World,
) -> None:
    _visit_id, token, code = await schedule_at(world, 10)
    world.clock.set(world.local(2026, 3, 2, 9, 55))
    for _ in range(5):
        with pytest.raises(CredentialRejected) as wrong:
            await world.service.join_visit(token, "00000000" if code != "00000000" else "11111111")
        assert wrong.value.code == "code_wrong"
    with pytest.raises(CredentialRejected) as locked:
        await world.service.join_visit(token, code)
    assert locked.value.code == "credential_locked_temporarily"
    assert "会见码错误次数过多" in locked.value.zh
    world.clock.advance(timedelta(minutes=16))
    assert (await world.service.join_visit(token, code)).state is VisitState.LOBBY


async def test_a_cut_ends_the_visit_and_the_link_stops_working(world: World) -> None:
    visit_id, token, code = await schedule_at(world, 10)
    world.clock.set(world.local(2026, 3, 2, 10, 0))
    await world.service.join_visit(token, code)
    cut = await world.service.cut_visit(world.officers[Role.DUTY].id, visit_id, "出现未经批准人员")
    assert cut.end_reason is EndReason.OFFICER_CUT
    with pytest.raises(CredentialRejected) as rejected:
        await world.service.join_visit(token, code)
    assert rejected.value.code == "credential_revoked"
    with pytest.raises(InvalidTransition):
        await world.service.advance_visit(visit_id, VisitState.LIVE, "system")


async def test_only_a_duty_officer_may_cut_or_schedule(world: World) -> None:
    visit_id, _token, _code = await schedule_at(world, 10)
    with pytest.raises(PermissionDenied):
        await world.service.cut_visit(world.officers[Role.REVIEWER].id, visit_id, "x")
    app_id = await world.approved_application(visitor(sequence="456"))
    with pytest.raises(PermissionDenied):
        await world.service.schedule(
            world.officers[Role.LEADER].id, app_id, world.kiosk_id, world.local(2026, 3, 2, 14)
        )


async def test_the_third_visit_in_a_month_needs_a_leaders_exception_and_nothing_is_half_written(
    world: World,
) -> None:
    await schedule_at(world, 10)
    await schedule_at(world, 11)
    app_id = await world.approved_application()
    records_before = len(await audit_names(world))
    with pytest.raises(RuleViolation) as refused:
        await world.service.schedule(
            world.officers[Role.DUTY].id, app_id, world.kiosk_id, world.local(2026, 3, 2, 14)
        )
    assert "每月2次" in refused.value.zh and "所领导" in refused.value.zh
    async with world.service.uow() as uow:
        assert len(await uow.appointments.for_detainee(world.detainee.id)) == 2
        assert (await uow.applications.get(app_id)).state is ApplicationState.APPROVED  # type: ignore[union-attr]
    assert len(await audit_names(world)) == records_before

    await world.service.grant_exception(
        world.officers[Role.LEADER].id, app_id, ExceptionKind.EXTRA_VISIT, "母亲病重"
    )
    scheduled = await world.service.schedule(
        world.officers[Role.DUTY].id, app_id, world.kiosk_id, world.local(2026, 3, 2, 14)
    )
    assert scheduled.appointment.starts_at == world.local(2026, 3, 2, 14)
    # A new calendar month counts afresh: 1 April needs no exception.
    april = await world.approved_application()
    booked = await world.service.schedule(
        world.officers[Role.DUTY].id, april, world.kiosk_id, world.local(2026, 4, 1, 10)
    )
    assert booked.visit.state is VisitState.SCHEDULED


async def test_a_longer_visit_exception_extends_the_visit_clock(world: World) -> None:
    app_id = await world.approved_application()
    await world.service.grant_exception(
        world.officers[Role.LEADER].id,
        app_id,
        ExceptionKind.LONGER_VISIT,
        "路途遥远",
        extra_minutes=30,
    )
    scheduled = await world.service.schedule(
        world.officers[Role.DUTY].id, app_id, world.kiosk_id, world.local(2026, 3, 2, 10)
    )
    assert scheduled.visit.limit_minutes == 90
    assert scheduled.appointment.ends_at - scheduled.appointment.starts_at == timedelta(minutes=90)


async def test_an_ineligible_detainee_cannot_be_approved_and_the_reviewer_sees_why() -> None:
    world = await build_world(MemoryUnitOfWorkFactory(), kind=FacilityKind.DETENTION_HOUSE)
    async with world.service.uow() as uow:
        detainee = await uow.detainees.get(world.detainee.id)
        assert detainee is not None
        detainee.strict_management = True
        await uow.detainees.update(detainee)
        await uow.commit()
    app = await world.service.submit_application(
        facility_id=world.facility.id,
        detainee_name="张伟",
        visitors=[visitor()],
        reason="other",
        reason_detail="家中老人想念",
    )
    await world.service.accept(world.officers[Role.INTAKE].id, app.id)
    brief = await world.service.review_brief(world.officers[Role.REVIEWER].id, app.id)
    assert [r.value for r in brief.ineligible] == ["strict_management"]
    with pytest.raises(RuleViolation) as refused:
        await world.service.approve(world.officers[Role.REVIEWER].id, app.id)
    assert "严管" in refused.value.zh


async def test_submitting_a_fourth_visitor_or_a_bad_id_number_stores_nothing(world: World) -> None:
    four = [visitor(sequence=s) for s in ("111", "222", "333", "444")]
    with pytest.raises(ValidationError) as too_many:
        await world.service.submit_application(
            facility_id=world.facility.id,
            detainee_name="张伟",
            visitors=four,
            reason="other",
            reason_detail="x",
        )
    assert too_many.value.code == "visitors_too_many"
    bad = visitor()
    bad = type(bad)(
        bad.name,
        bad.id_number[:-1] + ("0" if bad.id_number[-1] != "0" else "1"),
        bad.phone,
        bad.relationship,
        bad.id_photo_ref,
    )
    with pytest.raises(ValidationError) as wrong_id:
        await world.service.submit_application(
            facility_id=world.facility.id,
            detainee_name="张伟",
            visitors=[bad],
            reason="distance_hardship",
        )
    assert wrong_id.value.field == "visitors.0.id_number"
    async with world.service.uow() as uow:
        assert await uow.applications.list(world.facility.id) == []


async def test_the_review_deadline_is_five_working_days_and_the_relative_can_look_it_up(
    world: World,
) -> None:
    # Friday 13 February 2026, before the Spring Festival break.
    world.clock.set(world.local(2026, 2, 13, 10))
    app = await world.service.submit_application(
        facility_id=world.facility.id,
        detainee_name="张伟",
        visitors=[visitor()],
        reason="distance_hardship",
    )
    assert app.deadline.due.isoformat() == "2026-02-27"
    found = await world.service.application_status(app.number, visitor().id_number)
    assert found.application.id == app.id
    assert found.application.state is ApplicationState.SUBMITTED
    assert found.appointment is None and found.secrets is None
    with pytest.raises(Exception) as not_found:
        await world.service.application_status(app.number, visitor(sequence="999").id_number)
    assert getattr(not_found.value, "code", None) == "application_lookup_failed"


async def test_officers_log_in_with_argon2_hashed_passwords() -> None:
    world = await build_world(MemoryUnitOfWorkFactory(), hasher=Argon2Hasher())
    officer = world.officers[Role.DUTY]
    assert officer.password_hash.startswith("$argon2id$") and PASSWORD not in officer.password_hash
    assert (await world.service.authenticate("officer-duty", PASSWORD)).id == officer.id
    for username, password in (("officer-duty", "wrong-password-1"), ("nobody", PASSWORD)):
        with pytest.raises(CredentialRejected) as failed:
            await world.service.authenticate(username, password)
        assert failed.value.zh == "用户名或密码错误"


async def test_two_kiosk_bookings_for_the_same_slot_cannot_both_succeed(world: World) -> None:
    first = await world.approved_application()
    second = await world.approved_application(visitor(sequence="789"))
    duty = world.officers[Role.DUTY].id
    await world.service.schedule(duty, first, world.kiosk_id, world.local(2026, 3, 3, 9))
    with pytest.raises(Exception) as clash:
        await world.service.schedule(duty, second, world.kiosk_id, world.local(2026, 3, 3, 9, 30))
    assert getattr(clash.value, "code", None) == "slot_taken"


def test_memory_store_starts_empty() -> None:
    assert MemoryStore().audit == []


async def test_the_status_page_can_show_the_link_and_code_again_until_the_visit_ends() -> None:
    world = await build_world(MemoryUnitOfWorkFactory())
    world.service.sealer = FernetSealer(Fernet.generate_key())
    visit_id, token, code = await schedule_at(world, 10)
    async with world.service.uow() as uow:
        [credential] = await uow.credentials.for_visit(visit_id)
    assert credential.sealed_secrets and code not in credential.sealed_secrets
    assert token not in credential.sealed_secrets

    application = (await world.service.get_visit(visit_id)).application_id
    assert application is not None
    status = await world.service.status_of(application)
    assert status.secrets == IssuedSecrets(token, code)
    assert status.appointment is not None and status.appointment.starts_at == world.local(
        2026, 3, 2, 10
    )

    await world.service.cut_visit(world.officers[Role.DUTY].id, visit_id, "测试")
    assert (await world.service.status_of(application)).secrets is None
    async with world.service.uow() as uow:
        [credential] = await uow.credentials.for_visit(visit_id)
    assert credential.sealed_secrets is None


async def test_every_decision_queues_a_notice_to_the_applicant_in_the_same_transaction(
    world: World,
) -> None:
    visit_id, _token, _code = await schedule_at(world, 10)
    application = (await world.service.get_visit(visit_id)).application_id
    async with world.service.uow() as uow:
        notices = await uow.outbox.for_application(application or "")
    assert [n.kind for n in notices] == [
        NoticeKind.APPLICATION_RECEIVED,
        NoticeKind.APPLICATION_APPROVED,
        NoticeKind.VISIT_SCHEDULED,
    ]
    assert {n.phone for n in notices} == {"13800138000"}
    assert all(n.pending for n in notices)
