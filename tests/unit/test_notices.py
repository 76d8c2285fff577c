"""Notices: the outbox back-off, the SMS texts in Chinese, and the dispatcher's
rules (send outside transactions, drop notices that no longer apply, survive a
failed round) on the in-memory store."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography.fernet import Fernet

from server import notify
from server.notify import DeliveryFailed, NoticeDispatcher, mask_phone, render
from server.secrets import FernetSealer
from sessions import notifications
from sessions.memory import MemoryUnitOfWorkFactory
from sessions.notifications import MAX_ATTEMPTS, Notice, NoticeKind
from sessions.officers import Role
from sessions.services import ApplicationStatus
from tests.support.domain import World, build_world, visitor

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
BASE = "https://visit.example.cn"


def fresh_notice() -> Notice:
    return Notice("n-1", NoticeKind.APPLICATION_RECEIVED, "app-1", "13800138000", T0)


# --- back-off --------------------------------------------------------------------------------


def test_failed_attempts_back_off_exponentially_then_give_up() -> None:
    notice = fresh_notice()
    now = T0
    waits = []
    for attempt in range(1, MAX_ATTEMPTS):
        notice.attempt_failed(f"HTTP 503 #{attempt}", now)
        assert notice.attempts == attempt and notice.pending
        assert notice.next_attempt_at is not None
        waits.append(notice.next_attempt_at - now)
        assert not notice.due(notice.next_attempt_at - timedelta(microseconds=1))
        assert notice.due(notice.next_attempt_at)
        now = notice.next_attempt_at
    assert waits == [timedelta(seconds=30 * 2**i) for i in range(MAX_ATTEMPTS - 1)]
    assert waits[:3] == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]

    notice.attempt_failed("HTTP 503 again", now)
    assert notice.attempts == MAX_ATTEMPTS
    assert notice.failed_at == now and notice.next_attempt_at is None
    assert not notice.pending and not notice.due(now + timedelta(days=1))
    assert notice.last_error == "HTTP 503 again"


def test_the_back_off_is_capped_at_one_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifications, "MAX_ATTEMPTS", 20)
    notice = fresh_notice()
    waits = []
    for _ in range(19):
        notice.attempt_failed("down", T0)
        assert notice.next_attempt_at is not None
        waits.append(notice.next_attempt_at - T0)
    assert waits[7] == timedelta(seconds=3600)  # 30 s * 2**7 = 3840 s, capped
    assert max(waits) == timedelta(hours=1) and waits[-1] == timedelta(hours=1)
    assert waits == sorted(waits)


def test_a_delivery_clears_the_last_error_and_long_errors_are_cut() -> None:
    notice = fresh_notice()
    notice.attempt_failed("x" * 2000, T0)
    assert notice.last_error == "x" * 500
    notice.delivered(T0 + timedelta(minutes=1))
    assert notice.sent_at == T0 + timedelta(minutes=1) and notice.last_error is None
    assert not notice.pending and not notice.due(T0 + timedelta(days=1))


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13800138000", "138****8000"),
        ("+8613912345678", "+86*******5678"),
        ("12345", "***45"),
    ],
)
def test_phone_numbers_are_masked_for_logs(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


# --- texts -------------------------------------------------------------------------------------


@pytest.fixture
async def world() -> World:
    made = await build_world(MemoryUnitOfWorkFactory())
    made.service.sealer = FernetSealer(Fernet.generate_key())
    return made


async def submitted(world: World) -> str:
    app = await world.service.submit_application(
        facility_id=world.facility.id,
        detainee_name=world.detainee.name,
        visitors=[visitor()],
        reason="family_emergency",
    )
    return app.id


async def test_received_gives_the_number_the_deadline_and_the_status_link(world: World) -> None:
    status = await world.service.status_of(await submitted(world))
    assert status.application.deadline.due == date(2026, 3, 9)  # 5 working days
    assert render(NoticeKind.APPLICATION_RECEIVED, status, BASE + "/") == (
        f"【视频会见】您的会见申请（编号{status.application.number}）已提交，"
        f"监所将在2026年3月9日前答复。查询：{BASE}/status"
    )


async def test_returned_and_rejected_give_the_officers_reason(world: World) -> None:
    returned = await submitted(world)
    await world.service.return_incomplete(
        world.officers[Role.INTAKE].id, returned, "身份证照片不清晰"
    )
    status = await world.service.status_of(returned)
    text = render(NoticeKind.APPLICATION_RETURNED, status, BASE)
    assert text == (
        f"【视频会见】您的会见申请（编号{status.application.number}）被退回补正，"
        f"原因：身份证照片不清晰。请补正后重新提交。查询：{BASE}/status"
    )

    rejected = await submitted(world)
    await world.service.accept(world.officers[Role.INTAKE].id, rejected)
    await world.service.reject(world.officers[Role.REVIEWER].id, rejected, "近期已会见")
    status = await world.service.status_of(rejected)
    text = render(NoticeKind.APPLICATION_REJECTED, status, BASE)
    assert text == (
        f"【视频会见】您的会见申请（编号{status.application.number}）未获批准，"
        f"原因：近期已会见。查询：{BASE}/status"
    )


async def test_approved_says_the_time_will_follow(world: World) -> None:
    status = await world.service.status_of(await world.approved_application())
    text = render(NoticeKind.APPLICATION_APPROVED, status, BASE)
    assert text is not None
    assert "已通过审核，监所将另行通知会见时间" in text
    assert status.application.number in text and f"{BASE}/status" in text


async def schedule(world: World) -> tuple[str, str, str, ApplicationStatus]:
    app_id = await world.approved_application()
    scheduled = await world.service.schedule(
        world.officers[Role.DUTY].id, app_id, world.kiosk_id, world.local(2026, 3, 2, 10)
    )
    return (
        app_id,
        scheduled.secrets.token,
        scheduled.secrets.code,
        await world.service.status_of(app_id),
    )


async def test_visit_scheduled_gives_place_local_time_link_code_and_instructions(
    world: World,
) -> None:
    _app_id, token, code, status = await schedule(world)
    text = render(NoticeKind.VISIT_SCHEDULED, status, BASE)
    assert text is not None
    assert text.startswith("【视频会见】")
    assert "测试看守所" in text
    assert "3月2日 10:00" in text
    assert f"{BASE}/v/{token}" in text
    assert f"会见码：{code}" in text and len(code) == 8
    assert "请提前15分钟进入，会见时将身份证对准摄像头出示5至10秒" in text

    # The time is the facility's wall clock, not the server's or UTC.
    elsewhere = replace(status, facility=replace(status.facility, time_zone="Asia/Urumqi"))
    text = render(NoticeKind.VISIT_SCHEDULED, elsewhere, BASE)
    assert text is not None and "3月2日 08:00" in text and "10:00" not in text


async def test_visit_scheduled_is_obsolete_once_the_link_is_gone(world: World) -> None:
    app_id, _token, _code, status = await schedule(world)
    assert status.visit is not None
    await world.service.cut_visit(world.officers[Role.DUTY].id, status.visit.id, "测试")
    assert render(NoticeKind.VISIT_SCHEDULED, await world.service.status_of(app_id), BASE) is None


# --- the dispatcher ------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail: str | None = None

    async def send(self, phone: str, text: str) -> None:
        if self.fail is not None:
            raise DeliveryFailed(self.fail)
        self.sent.append((phone, text))


async def notices(world: World, application_id: str) -> list[Notice]:
    async with world.service.uow() as uow:
        return await uow.outbox.for_application(application_id)


async def test_the_dispatcher_sends_due_notices_in_bounded_rounds(world: World) -> None:
    app_id, _token, code, _status = await schedule(world)
    recorder = Recorder()
    dispatcher = NoticeDispatcher(world.service, recorder, world.clock, BASE)
    assert await dispatcher.run_once(limit=2) == 2
    assert len(recorder.sent) == 2
    assert await dispatcher.run_once(limit=2) == 1
    assert await dispatcher.run_once(limit=2) == 0
    assert [phone for phone, _ in recorder.sent] == ["13800138000"] * 3
    assert sum(code in text for _, text in recorder.sent) == 1
    assert all(n.sent_at == world.clock.now() for n in await notices(world, app_id))


async def test_a_failed_send_is_retried_after_the_back_off(world: World) -> None:
    app_id = await submitted(world)
    recorder = Recorder()
    recorder.fail = "gateway answered HTTP 503"
    dispatcher = NoticeDispatcher(world.service, recorder, world.clock, BASE)
    assert await dispatcher.run_once() == 1
    (notice,) = await notices(world, app_id)
    assert notice.attempts == 1 and notice.pending
    assert notice.next_attempt_at == world.clock.now() + timedelta(seconds=30)
    assert notice.last_error == "gateway answered HTTP 503"
    assert await dispatcher.run_once() == 0

    recorder.fail = None
    world.clock.advance(timedelta(seconds=30))
    assert await dispatcher.run_once() == 1
    assert len(recorder.sent) == 1
    (notice,) = await notices(world, app_id)
    assert notice.sent_at is not None and notice.last_error is None


async def test_a_visit_notice_that_no_longer_applies_is_never_sent(world: World) -> None:
    app_id, _token, code, status = await schedule(world)
    assert status.visit is not None
    await world.service.cut_visit(world.officers[Role.DUTY].id, status.visit.id, "测试")
    recorder = Recorder()
    assert await NoticeDispatcher(world.service, recorder, world.clock, BASE).run_once() == 3
    assert len(recorder.sent) == 2 and all(code not in text for _, text in recorder.sent)
    scheduled = [n for n in await notices(world, app_id) if n.kind is NoticeKind.VISIT_SCHEDULED]
    assert scheduled[0].failed_at is not None and scheduled[0].last_error == notify.OBSOLETE
    assert scheduled[0].sent_at is None


async def test_a_notice_whose_text_cannot_be_built_does_not_block_the_others(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await submitted(world)
    second = await submitted(world)
    real_render = notify.render

    def broken_for_first(kind: NoticeKind, status: ApplicationStatus, base: str) -> str | None:
        if status.application.id == first:
            raise KeyError("boom")
        return real_render(kind, status, base)

    monkeypatch.setattr(notify, "render", broken_for_first)
    recorder = Recorder()
    assert await NoticeDispatcher(world.service, recorder, world.clock, BASE).run_once() == 2
    assert len(recorder.sent) == 1
    (broken,) = await notices(world, first)
    assert broken.attempts == 1 and broken.pending and "KeyError" in (broken.last_error or "")
    assert (await notices(world, second))[0].sent_at is not None


async def test_run_forever_survives_a_failed_round_and_stops_when_cancelled(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher = NoticeDispatcher(world.service, Recorder(), world.clock, BASE)
    rounds = 0
    third = asyncio.Event()

    async def flaky(limit: int = notify.BATCH) -> int:
        nonlocal rounds
        rounds += 1
        if rounds == 3:
            third.set()
        if rounds == 1:
            raise ConnectionError("database went away")
        return 0

    dispatcher.run_once = flaky  # type: ignore[method-assign]
    task = asyncio.create_task(dispatcher.run_forever(interval=0.01))
    await asyncio.wait_for(third.wait(), timeout=5)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "notice dispatch round failed" in caplog.text
    assert "database went away" in caplog.text
