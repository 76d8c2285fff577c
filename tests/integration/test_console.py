"""The officers' console over the real app and a real SQLite file, driven like a
browser: sign in through the form, act through the forms (with their CSRF
token), and read the pages. Seeded with the demo (演示市看守所, one officer per
post, an application already scheduled)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request

from server.auth import LoginThrottle
from server.demo import DEMO_PASSWORD, DemoSeed
from server.keys import SERVICE
from server.uploads import PHOTOS
from sessions.applications import ApplicationState
from sessions.clock import ManualClock
from sessions.detainees import Detainee
from sessions.facilities import Facility, FacilityKind
from sessions.officers import Role
from sessions.services import VisitGateService, VisitorInput
from tests.support.domain import APP_START as START
from tests.support.domain import id_number

Client = TestClient[Request, Application]
CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


def service_of(client: Client) -> VisitGateService:
    return client.app[SERVICE]


async def facility_of(client: Client) -> Facility:
    async with service_of(client).uow() as uow:
        facilities = await uow.facilities.list()
    return next(f for f in facilities if f.name == "演示市看守所")


async def officer_id(client: Client, username: str) -> str:
    async with service_of(client).uow() as uow:
        officer = await uow.officers.get_by_username(username)
    assert officer is not None
    return officer.id


def photo_ref(facility: Facility) -> str:
    return f"{facility.id}/{uuid.uuid4().hex}.jpg"


async def submit(client: Client, sequence: str = "321") -> str:
    facility = await facility_of(client)
    application = await service_of(client).submit_application(
        facility_id=facility.id,
        detainee_name="张伟",
        visitors=[
            VisitorInput(
                "李秀英", id_number(sequence=sequence), "13800138000", "parent", photo_ref(facility)
            )
        ],
        reason="family_emergency",
    )
    return application.id


async def state_of(client: Client, application_id: str) -> ApplicationState:
    return (await service_of(client).status_of(application_id)).application.state


async def post_login(
    client: Client, username: str, password: str = DEMO_PASSWORD, next_: str | None = None
) -> ClientResponse:
    form_page = await client.get("/console/login", params={"next": next_} if next_ else None)
    match = CSRF.search(await form_page.text())
    assert match is not None
    return await client.post(
        "/console/login",
        data={
            "username": username,
            "password": password,
            "_csrf": match.group(1),
            **({"next": next_} if next_ else {}),
        },
        allow_redirects=False,
    )


async def log_in_as(client: Client, username: str) -> str:
    """Sign in (dropping any previous session) and return the session's CSRF token."""
    client.session.cookie_jar.clear()
    response = await post_login(client, username)
    assert response.status == 303, await response.text()
    page = await client.get("/console/")
    match = CSRF.search(await page.text())
    assert match is not None
    return match.group(1)


async def act(
    client: Client, csrf: str, application_id: str, action: str, **fields: str
) -> ClientResponse:
    return await client.post(
        f"/console/applications/{application_id}/{action}",
        data={"_csrf": csrf, **fields},
        allow_redirects=False,
    )


# -- signing in ----------------------------------------------------------------------
async def test_an_officer_signs_in_and_sees_the_dashboard(client: Client) -> None:
    response = await post_login(client, "shouli")
    assert response.status == 303
    assert response.headers["Location"] == "/console/"
    cookie = response.headers.getall("Set-Cookie")
    session_cookie = next(c for c in cookie if c.startswith("visitgate_session="))
    assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie
    page = await client.get("/console/")
    html = await page.text()
    assert page.status == 200
    assert "王敏" in html and "受理岗" in html and "待受理" in html and "今日会见" in html


async def test_a_wrong_password_is_refused_in_chinese(client: Client) -> None:
    response = await post_login(client, "shouli", "not-the-password")
    assert response.status == 403
    assert "用户名或密码错误" in await response.text()
    assert (await client.get("/console/", allow_redirects=False)).status == 302


async def test_five_failures_lock_the_username_even_for_the_right_password(
    client: Client,
) -> None:
    for _ in range(5):
        assert (await post_login(client, "shouli", "wrong-password-1")).status == 403
    refused = await post_login(client, "shouli")
    assert refused.status == 429
    assert "登录失败次数过多，请15分钟后再试" in await refused.text()
    # Another officer from the same address is not locked out by these five.
    assert (await post_login(client, "shenhe")).status == 303


async def test_the_throttle_forgets_after_fifteen_minutes_and_stays_bounded() -> None:
    clock = ManualClock(START)
    throttle = LoginThrottle(clock, max_keys=50)
    for _ in range(5):
        throttle.failed("shouli", "10.0.0.1")
    assert throttle.blocked("shouli", "10.0.0.2")
    clock.advance(timedelta(minutes=15, seconds=1))
    assert not throttle.blocked("shouli", "10.0.0.2")
    for i in range(20):
        throttle.failed(f"user{i}", "10.0.0.9")
    assert throttle.blocked("someone-else", "10.0.0.9")
    for i in range(500):
        throttle.failed(f"spray{i}", f"10.1.{i // 250}.{i % 250}")
    assert len(throttle) <= 50


async def test_logging_out_ends_the_session(client: Client) -> None:
    csrf = await log_in_as(client, "shouli")
    out = await client.post("/console/logout", data={"_csrf": csrf}, allow_redirects=False)
    assert out.status == 303
    again = await client.get("/console/", allow_redirects=False)
    assert again.status == 302


async def test_a_page_without_login_redirects_to_the_login_form(client: Client) -> None:
    response = await client.get("/console/ledger", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/console/login?next=/console/ledger"


async def test_login_follows_only_a_relative_next(client: Client) -> None:
    back = await post_login(client, "shouli", next_="/console/ledger")
    assert back.headers["Location"] == "/console/ledger"
    client.session.cookie_jar.clear()
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = await post_login(client, "shouli", next_=evil)
        assert response.headers["Location"] == "/console/"
        client.session.cookie_jar.clear()


async def test_the_session_ends_after_thirty_idle_minutes(
    client: Client, clock: ManualClock
) -> None:
    await log_in_as(client, "shouli")
    clock.advance(timedelta(minutes=29))
    assert (await client.get("/console/", allow_redirects=False)).status == 200
    clock.advance(timedelta(minutes=31))
    assert (await client.get("/console/", allow_redirects=False)).status == 302


async def test_a_deactivated_officer_is_logged_out_at_once(client: Client) -> None:
    await log_in_as(client, "shouli")
    await service_of(client).set_officer_active(
        await officer_id(client, "admin"), await officer_id(client, "shouli"), False
    )
    assert (await client.get("/console/", allow_redirects=False)).status == 302


# -- posts and roles -----------------------------------------------------------------------
async def _application_in(client: Client, state: ApplicationState) -> str:
    application_id = await submit(client)
    service = service_of(client)
    if state in (ApplicationState.ACCEPTED, ApplicationState.APPROVED):
        await service.accept(await officer_id(client, "shouli"), application_id)
    if state is ApplicationState.APPROVED:
        await service.approve(await officer_id(client, "shenhe"), application_id)
    return application_id


def _fields(action: str, kiosk_id: str) -> dict[str, str]:
    return {
        "accept": {},
        "return": {"reason": "身份证照片不清晰"},
        "approve": {},
        "reject": {"reason": "不符合条件"},
        "exception": {"kind": "longer_visit", "reason": "病重", "extra_minutes": "30"},
        "schedule": {"kiosk_id": kiosk_id, "date": "2026-03-03", "time": "10:00"},
    }[action]


NEEDED_STATE = {
    "accept": ApplicationState.SUBMITTED,
    "return": ApplicationState.SUBMITTED,
    "approve": ApplicationState.ACCEPTED,
    "reject": ApplicationState.ACCEPTED,
    "exception": ApplicationState.ACCEPTED,
    "schedule": ApplicationState.APPROVED,
}
WHO_MAY = {
    "accept": "shouli",
    "return": "shouli",
    "approve": "shenhe",
    "reject": "shenhe",
    "exception": "lingdao",
    "schedule": "zhiban",
}


@pytest.mark.parametrize("username", ["shouli", "shenhe", "zhiban", "lingdao", "admin"])
@pytest.mark.parametrize("action", list(WHO_MAY))
async def test_each_post_can_do_exactly_its_own_steps(
    client: Client, action: str, username: str
) -> None:
    application_id = await _application_in(client, NEEDED_STATE[action])
    facility = await facility_of(client)
    async with service_of(client).uow() as uow:
        [kiosk] = await uow.kiosks.list_by_facility(facility.id)
    csrf = await log_in_as(client, username)
    response = await act(client, csrf, application_id, action, **_fields(action, kiosk.id))
    state = await state_of(client, application_id)
    if username == WHO_MAY[action]:
        assert response.status == 303, await response.text()
        assert response.headers["Location"] == f"/console/applications/{application_id}"
        assert action == "exception" or state is not NEEDED_STATE[action]
    else:
        assert response.status == 403
        assert "此操作需要" in await response.text()
        assert state is NEEDED_STATE[action]


async def test_a_post_without_the_csrf_token_is_refused(client: Client) -> None:
    application_id = await submit(client)
    await log_in_as(client, "shouli")
    response = await client.post(
        f"/console/applications/{application_id}/accept", data={}, allow_redirects=False
    )
    assert response.status == 403
    assert "请求来源无法验证" in await response.text()
    forged = await act(client, "not-the-token", application_id, "accept")
    assert forged.status == 403
    assert await state_of(client, application_id) is ApplicationState.SUBMITTED


async def test_a_post_from_another_origin_is_refused(client: Client) -> None:
    application_id = await submit(client)
    csrf = await log_in_as(client, "shouli")
    response = await client.post(
        f"/console/applications/{application_id}/accept",
        data={"_csrf": csrf},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert response.status == 403
    assert await state_of(client, application_id) is ApplicationState.SUBMITTED


async def test_the_login_form_needs_its_own_token(client: Client) -> None:
    response = await client.post(
        "/console/login",
        data={"username": "shouli", "password": DEMO_PASSWORD},
        allow_redirects=False,
    )
    assert response.status == 403
    assert "登录页面已过期" in await response.text()


async def test_the_full_flow_through_the_forms_ends_scheduled_with_the_code_shown(
    client: Client,
) -> None:
    application_id = await submit(client)
    csrf = await log_in_as(client, "shouli")
    assert (await act(client, csrf, application_id, "accept")).status == 303
    csrf = await log_in_as(client, "shenhe")
    page = await (await client.get(f"/console/applications/{application_id}")).text()
    assert "审核通过" in page and "李秀英" in page and id_number(sequence="321") in page
    assert (await act(client, csrf, application_id, "approve")).status == 303
    csrf = await log_in_as(client, "zhiban")
    page = await (await client.get(f"/console/applications/{application_id}")).text()
    kiosk_id = re.search(r'<option value="([0-9a-f]{32})">一号会见终端', page)
    assert kiosk_id is not None
    scheduled = await client.post(
        f"/console/applications/{application_id}/schedule",
        data={"_csrf": csrf, "kiosk_id": kiosk_id.group(1), "date": "2026-03-03", "time": "10:00"},
    )
    html = await scheduled.text()
    assert scheduled.status == 200
    assert await state_of(client, application_id) is ApplicationState.SCHEDULED
    status = await service_of(client).status_of(application_id)
    assert status.secrets is not None
    assert status.secrets.code in html and f"/v/{status.secrets.token}" in html
    assert "2026-03-03 10:00" in html
    again = await (await client.get(f"/console/applications/{application_id}")).text()
    assert status.secrets.code not in again  # shown once
    assert "预约会见" in again  # the history names the step in Chinese


async def test_approving_an_ineligible_detainee_shows_why_and_changes_nothing(
    client: Client,
) -> None:
    application_id = await _application_in(client, ApplicationState.ACCEPTED)
    facility = await facility_of(client)
    async with service_of(client).uow() as uow:
        [detainee] = await uow.detainees.list_by_facility(facility.id)
    detainee.refuses_video_visits = True
    await service_of(client).update_detainee(await officer_id(client, "admin"), detainee)
    csrf = await log_in_as(client, "shenhe")
    page = await (await client.get(f"/console/applications/{application_id}")).text()
    assert "被会见人本人拒绝会见" in page  # in the review brief before anyone clicks
    response = await act(client, csrf, application_id, "approve")
    assert response.status == 409
    assert "不安排视频会见：被会见人本人拒绝会见" in await response.text()
    assert await state_of(client, application_id) is ApplicationState.ACCEPTED


async def test_returning_without_a_reason_is_refused_in_chinese(client: Client) -> None:
    application_id = await submit(client)
    csrf = await log_in_as(client, "shouli")
    response = await act(client, csrf, application_id, "return", reason="  ")
    assert response.status == 422
    assert "请填写理由" in await response.text()


# -- dashboard and ledger ---------------------------------------------------------------------
async def test_an_application_past_its_deadline_is_listed_as_overdue(
    client: Client, clock: ManualClock
) -> None:
    application_id = await submit(client)
    number = (await service_of(client).status_of(application_id)).application.number
    clock.advance(timedelta(days=10))
    await log_in_as(client, "shouli")
    html = await (await client.get("/console/")).text()
    overdue = html.split('id="overdue"')[1].split("</section>")[0]
    assert number in overdue and "已超期" in overdue


async def test_the_ledger_lists_applications_and_exports_csv_for_excel(
    client: Client, demo: DemoSeed
) -> None:
    await log_in_as(client, "shenhe")
    page = await client.get("/console/ledger", params={"date_from": "2026-03-01"})
    html = await page.text()
    assert demo.application_number in html and "张伟" in html and "已预约" in html
    empty = await (await client.get("/console/ledger", params={"date_from": "2026-04-01"})).text()
    assert demo.application_number not in empty
    verified = await (await client.get("/console/ledger", params={"verify": "1"})).text()
    assert "台账校验通过" in verified
    exported = await client.get("/console/ledger.csv", params={"state": "scheduled"})
    body = await exported.read()
    assert exported.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert exported.headers["Content-Disposition"] == 'attachment; filename="ledger-20260302.csv"'
    assert body.startswith(b"\xef\xbb\xbf")
    text = body.decode("utf-8")
    assert "张伟" in text and demo.application_number in text


async def test_csv_cells_cannot_smuggle_formulas() -> None:
    from server.console import csv_safe

    assert csv_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_safe("@SUM") == "'@SUM" and csv_safe("+1") == "'+1" and csv_safe("-2") == "'-2"
    assert csv_safe("张伟") == "张伟"


# -- admin -------------------------------------------------------------------------------------
async def test_the_admin_adds_a_kiosk_and_sees_its_token_once(client: Client) -> None:
    csrf = await log_in_as(client, "admin")
    response = await client.post("/console/admin/kiosks", data={"_csrf": csrf, "name": "二号终端"})
    html = await response.text()
    assert response.status == 200
    token = re.search(r"/kiosk\?token=([A-Za-z0-9_-]+)", html)
    assert token is not None
    kiosk_page = await client.get("/kiosk", params={"token": token.group(1)})
    assert kiosk_page.status == 200 and "二号终端" in await kiosk_page.text()
    again = await (await client.get("/console/admin")).text()
    assert "二号终端" in again and token.group(1) not in again


async def test_a_non_admin_cannot_reach_the_admin_pages(client: Client) -> None:
    csrf = await log_in_as(client, "shouli")
    assert (await client.get("/console/admin")).status == 403
    refused = await client.post("/console/admin/kiosks", data={"_csrf": csrf, "name": "黑终端"})
    assert refused.status == 403
    facility = await facility_of(client)
    async with service_of(client).uow() as uow:
        kiosks = await uow.kiosks.list_by_facility(facility.id)
    assert [k.name for k in kiosks] == ["一号会见终端"]


async def test_the_admin_sets_rules_officers_detainees_and_the_calendar(client: Client) -> None:
    csrf = await log_in_as(client, "admin")
    rules = await client.post(
        "/console/admin/rules",
        data={
            "_csrf": csrf,
            "visits_per_period": "1",
            "period": "calendar_month",
            "max_visit_minutes": "30",
            "max_people": "2",
            "unexpected_face_policy": "auto_cut",
            "opening_hours": "08:30-12:00,14:00-17:00",
        },
        allow_redirects=False,
    )
    assert rules.status == 303
    assert (await facility_of(client)).rules.max_visit_minutes == 30
    bad = await client.post(
        "/console/admin/rules",
        data={
            "_csrf": csrf,
            "visits_per_period": "x",
            "period": "calendar_month",
            "max_visit_minutes": "30",
            "max_people": "2",
            "unexpected_face_policy": "auto_cut",
            "opening_hours": "08:30-12:00",
        },
    )
    assert bad.status == 422 and "会见次数须填写整数" in await bad.text()
    officer = await client.post(
        "/console/admin/officers",
        data={
            "_csrf": csrf,
            "username": "zhiban2",
            "display_name": "孙磊",
            "roles": ["duty", "intake"],
            "password": "a-long-password-2026",
        },
        allow_redirects=False,
    )
    assert officer.status == 303
    shouli = await officer_id(client, "shouli")
    off = await client.post(
        f"/console/admin/officers/{shouli}/active",
        data={"_csrf": csrf, "active": "0"},
        allow_redirects=False,
    )
    assert off.status == 303
    added = await client.post(
        "/console/admin/detainees",
        data={"_csrf": csrf, "name": "王强", "admitted_on": "2026-02-01"},
        allow_redirects=False,
    )
    assert added.status == 303
    facility = await facility_of(client)
    async with service_of(client).uow() as uow:
        detainees = await uow.detainees.list_by_facility(facility.id)
        shouli_now = await uow.officers.get(shouli)
    assert shouli_now is not None and not shouli_now.active
    wang = next(d for d in detainees if d.name == "王强")
    facts = await client.post(
        f"/console/admin/detainees/{wang.id}",
        data={"_csrf": csrf, "strict_management": "1"},
        allow_redirects=False,
    )
    assert facts.status == 303
    day = await client.post(
        "/console/admin/calendar",
        data={"_csrf": csrf, "day": "2027-01-01", "is_workday": "0", "note": "元旦"},
        allow_redirects=False,
    )
    assert day.status == 303
    html = await (await client.get("/console/admin")).text()
    assert "孙磊" in html and "王强" in html and "2027-01-01" in html and "元旦" in html
    async with service_of(client).uow() as uow:
        updated = await uow.detainees.get(wang.id)
    assert isinstance(updated, Detainee) and updated.strict_management


# -- photos ------------------------------------------------------------------------------------
async def test_photos_are_served_only_to_officers_of_their_facility(client: Client) -> None:
    service = service_of(client)
    facility = await facility_of(client)
    store = client.app[PHOTOS]
    ref = photo_ref(facility)
    path = store.path_of(ref)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    other = await service.create_facility("另一市拘留所", FacilityKind.DETENTION_HOUSE)
    await service.create_officer(
        facility_id=other.id,
        username="other-duty",
        display_name="外所民警",
        password=DEMO_PASSWORD,
        roles=frozenset({Role.DUTY}),
    )

    assert (await client.get(f"/console/photos/{ref}", allow_redirects=False)).status == 302
    await log_in_as(client, "shouli")
    mine = await client.get(f"/console/photos/{ref}")
    assert mine.status == 200
    assert mine.headers["Cache-Control"] == "private, no-store"
    assert mine.headers["X-Content-Type-Options"] == "nosniff"
    assert mine.headers["Content-Type"] == "image/jpeg"
    unknown = await client.get(f"/console/photos/{photo_ref(facility)}")
    assert unknown.status == 404
    malformed = await client.get("/console/photos/../secret.key")
    assert malformed.status == 404

    await log_in_as(client, "other-duty")
    refused = await client.get(f"/console/photos/{ref}")
    assert refused.status == 403
    assert "无权" in await refused.text()
