"""The service side of the live visit: warnings, mutes and chat are audit
events with the same rules as the rest (duty post, own facility, visit in
progress), and visit text is cleaned and bounded before it is stored."""

from __future__ import annotations

import pytest

from sessions.errors import (
    CredentialRejected,
    InvalidTransition,
    PermissionDenied,
    ValidationError,
)
from sessions.events import EventName
from sessions.memory import MemoryUnitOfWorkFactory
from sessions.officers import Role
from sessions.services import CHAT_MAX_CHARS, visit_text
from sessions.visits import EndReason, VisitState
from tests.support.domain import World, build_world


@pytest.fixture
async def world() -> World:
    return await build_world(MemoryUnitOfWorkFactory())


async def live_visit(world: World) -> str:
    app_id = await world.approved_application()
    scheduled = await world.service.schedule(
        world.officers[Role.DUTY].id, app_id, world.kiosk_id, world.local(2026, 3, 2, 10)
    )
    world.clock.set(world.local(2026, 3, 2, 9, 50))
    visit_id = scheduled.visit.id
    await world.service.join_visit(scheduled.secrets.token, scheduled.secrets.code)
    await world.service.start_connection(world.officers[Role.DUTY].id, visit_id)
    await world.service.advance_visit(visit_id, VisitState.IDENTITY_CHECK, "system")
    await world.service.advance_visit(visit_id, VisitState.LIVE, "system")
    return visit_id


def test_visit_text_is_stripped_of_control_characters_but_not_of_markup() -> None:
    assert visit_text(" <b>hi</b>\x00\x1b[31m\u202e\n ", 500, "text") == "<b>hi</b>[31m"
    assert visit_text("第一行\n第二行", 500, "text") == "第一行\n第二行"
    with pytest.raises(ValidationError) as empty:
        visit_text("\x00 \x07", 500, "text")
    assert empty.value.code == "text_empty"
    with pytest.raises(ValidationError) as long:
        visit_text("字" * (CHAT_MAX_CHARS + 1), CHAT_MAX_CHARS, "text")
    assert long.value.code == "text_too_long" and "500" in long.value.zh


async def test_warn_mute_and_chat_are_recorded_with_their_actor(world: World) -> None:
    visit_id = await live_visit(world)
    duty = world.officers[Role.DUTY].id
    warned = await world.service.warn(duty, visit_id, "请勿谈论案情")
    muted = await world.service.set_muted(duty, visit_id, "kiosk", True)
    said = await world.service.chat(visit_id, "relative", "妈，你好")
    assert warned.name is EventName.VISIT_WARNED and warned.actor == f"officer:{duty}"
    assert muted.data["side"] == "kiosk" and muted.data["muted"] is True
    assert said.data["text"] == "妈，你好" and said.actor.startswith("relative:")
    async with world.service.uow() as uow:
        names = [r.event for r in await uow.audit.records()]
    assert names[-3:] == ["visit.warned", "visit.mute_changed", "visit.chat_sent"]


async def test_only_the_duty_post_of_the_facility_may_warn_or_mute(world: World) -> None:
    visit_id = await live_visit(world)
    with pytest.raises(PermissionDenied):
        await world.service.warn(world.officers[Role.REVIEWER].id, visit_id, "注意")
    with pytest.raises(ValidationError):
        await world.service.set_muted(world.officers[Role.DUTY].id, visit_id, "officer", True)


async def test_chat_waits_for_the_visit_to_go_live_and_stops_when_it_ends(world: World) -> None:
    app_id = await world.approved_application()
    scheduled = await world.service.schedule(
        world.officers[Role.DUTY].id, app_id, world.kiosk_id, world.local(2026, 3, 2, 10)
    )
    world.clock.set(world.local(2026, 3, 2, 9, 50))
    await world.service.join_visit(scheduled.secrets.token, scheduled.secrets.code)
    with pytest.raises(InvalidTransition) as early:
        await world.service.chat(scheduled.visit.id, "kiosk", "你好")
    assert early.value.code == "chat_not_live"
    await world.service.cut_visit(world.officers[Role.DUTY].id, scheduled.visit.id, "测试")
    with pytest.raises(InvalidTransition):
        await world.service.chat(scheduled.visit.id, "kiosk", "你好")
    with pytest.raises(InvalidTransition):
        await world.service.warn(world.officers[Role.DUTY].id, scheduled.visit.id, "注意")


async def identity_check_visit(world: World) -> tuple[str, str]:
    """A visit waiting in its identity check, and its link token."""
    app_id = await world.approved_application()
    scheduled = await world.service.schedule(
        world.officers[Role.DUTY].id, app_id, world.kiosk_id, world.local(2026, 3, 2, 10)
    )
    world.clock.set(world.local(2026, 3, 2, 9, 50))
    visit_id = scheduled.visit.id
    await world.service.join_visit(scheduled.secrets.token, scheduled.secrets.code)
    await world.service.start_connection(world.officers[Role.DUTY].id, visit_id)
    await world.service.advance_visit(visit_id, VisitState.IDENTITY_CHECK, "system")
    return visit_id, scheduled.secrets.token


async def test_the_officers_admit_records_the_reason_before_the_visit_goes_live(
    world: World,
) -> None:
    visit_id, _token = await identity_check_visit(world)
    duty = world.officers[Role.DUTY].id
    with pytest.raises(PermissionDenied):
        await world.service.admit_visit(world.officers[Role.REVIEWER].id, visit_id, "看过了")
    with pytest.raises(ValidationError) as blank:
        await world.service.admit_visit(duty, visit_id, " \n ")
    assert blank.value.code == "reason_required" and blank.value.field == "reason"
    visit = await world.service.admit_visit(duty, visit_id, " 人工比对一致 ")
    assert visit.state is VisitState.LIVE and visit.live_at is not None
    async with world.service.uow() as uow:
        records = (await uow.audit.records())[-2:]
    assert [r.event for r in records] == ["visit.identity_checked", "visit.went_live"]
    assert records[0].data == {
        "passed": True,
        "override": True,
        "reason": "人工比对一致",
        "officer": duty,
    }
    with pytest.raises(InvalidTransition) as again:
        await world.service.admit_visit(duty, visit_id, "再来一次")
    assert again.value.code == "identity_not_checking"


async def test_the_officers_deny_ends_the_visit_and_revokes_its_link(world: World) -> None:
    visit_id, token = await identity_check_visit(world)
    duty = world.officers[Role.DUTY].id
    visit = await world.service.deny_identity(duty, visit_id, None)
    assert visit.state is VisitState.ENDED and visit.end_reason is EndReason.IDENTITY_FAILED
    async with world.service.uow() as uow:
        records = await uow.audit.records()
    (checked,) = [r for r in records if r.event == "visit.identity_checked"]
    assert checked.data["passed"] is False and checked.data["reason"] is None
    assert "credential.revoked" in [r.event for r in records]
    with pytest.raises(CredentialRejected) as refused:
        await world.service.join_visit(token, "00000000")
    assert refused.value.code == "credential_revoked"
