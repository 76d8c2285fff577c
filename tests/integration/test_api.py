"""The JSON API over the real app and a real SQLite file: each post can do
exactly its steps, every unsafe call needs the CSRF header, and bad input gets
a 4xx with a Chinese message and leaves nothing half-written."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from pytest_aiohttp.plugin import AiohttpClient

from server.app import create_app
from server.demo import DEMO_PASSWORD, DemoSeed
from server.keys import SERVICE
from server.settings import Settings
from sessions.clock import ManualClock
from sessions.services import VisitorInput
from tests.support.domain import APP_START as START
from tests.support.domain import id_number

Client = TestClient[Request, Application]


@pytest.fixture
async def app(settings: Settings, clock: ManualClock, demo: DemoSeed) -> Application:
    return create_app(settings, clock=clock)


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, app: Application) -> Client:
    return await aiohttp_client(app)


async def login(client: Client, username: str) -> str:
    """Log in as ``username`` on this client (replacing any earlier session)."""
    response = await client.post(
        "/api/v1/session", json={"username": username, "password": DEMO_PASSWORD}
    )
    assert response.status == 200, await response.text()
    token: str = (await response.json())["csrf_token"]
    return token


async def submit(app: Application, sequence: str = "321") -> str:
    """Submit through the service (the public form has its own tests)."""
    service = app[SERVICE]
    async with service.uow() as uow:
        [facility] = await uow.facilities.list()
    application = await service.submit_application(
        facility_id=facility.id,
        detainee_name="张伟",
        visitors=[
            VisitorInput(
                "王芳",
                id_number(sequence=sequence),
                "13900139000",
                "spouse",
                f"{facility.id}/a.jpg",
            )
        ],
        reason="illness_age_disability",
    )
    return application.id


async def call(
    client: Client, token: str | None, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"X-CSRF-Token": token} if token else {}
    response = await client.request(
        method, path, json=body if body is not None else {}, headers=headers
    )
    return response.status, await response.json()


async def as_officer(
    client: Client, username: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    return await call(client, await login(client, username), method, path, body)


async def kiosk_id(app: Application) -> str:
    async with app[SERVICE].uow() as uow:
        [facility] = await uow.facilities.list()
        [kiosk] = await uow.kiosks.list_by_facility(facility.id)
    return kiosk.id


async def accept_and_approve(client: Client, app_id: str) -> None:
    assert (await as_officer(client, "shouli", "POST", f"/api/v1/applications/{app_id}/accept"))[
        0
    ] == 200
    assert (await as_officer(client, "shenhe", "POST", f"/api/v1/applications/{app_id}/approve"))[
        0
    ] == 200


async def test_login_with_a_wrong_password_is_refused_in_chinese(client: Client) -> None:
    response = await client.post(
        "/api/v1/session", json={"username": "zhiban", "password": "wrong-one-123"}
    )
    assert response.status == 403
    assert (await response.json())["message"] == "用户名或密码错误"


async def test_without_a_session_the_api_answers_401(client: Client) -> None:
    response = await client.get("/api/v1/queues")
    assert response.status == 401
    assert (await response.json())["code"] == "login_required"


async def test_an_unsafe_call_without_the_csrf_header_is_refused(
    client: Client, app: Application
) -> None:
    token = await login(client, "shouli")
    app_id = await submit(app)
    status, body = await call(client, None, "POST", f"/api/v1/applications/{app_id}/accept")
    assert status == 403
    assert any("\u4e00" <= ch <= "\u9fff" for ch in body["message"])
    status, _ = await call(client, "forged-token", "POST", f"/api/v1/applications/{app_id}/accept")
    assert status == 403
    _, detail = await call(client, token, "GET", f"/api/v1/applications/{app_id}")
    assert detail["application"]["state"] == "submitted"


@pytest.mark.parametrize(
    ("step", "allowed"),
    [
        ("accept", "shouli"),
        ("approve", "shenhe"),
        ("schedule", "zhiban"),
        ("exceptions", "lingdao"),
    ],
)
@pytest.mark.parametrize("who", ["shouli", "shenhe", "zhiban", "lingdao", "admin"])
async def test_each_post_can_do_exactly_its_own_step(
    client: Client, app: Application, step: str, allowed: str, who: str
) -> None:
    app_id = await submit(app)
    if step in ("approve", "schedule"):
        assert (
            await as_officer(client, "shouli", "POST", f"/api/v1/applications/{app_id}/accept")
        )[0] == 200
    if step == "schedule":
        assert (
            await as_officer(client, "shenhe", "POST", f"/api/v1/applications/{app_id}/approve")
        )[0] == 200
    body: dict[str, Any] = {}
    if step == "schedule":
        body = {
            "kiosk_id": await kiosk_id(app),
            "starts_at": (START + timedelta(hours=3)).isoformat(),
        }
    if step == "exceptions":
        body = {"kind": "longer_visit", "reason": "路途遥远", "extra_minutes": 30}
    status, answer = await as_officer(
        client, who, "POST", f"/api/v1/applications/{app_id}/{step}", body
    )
    if who == allowed:
        assert status in (200, 201), answer
    else:
        assert status == 403, answer
        assert answer["code"] == "role_required" and "权限" in answer["message"]


async def test_scheduling_returns_the_link_and_code_once_and_a_slot_is_never_booked_twice(
    client: Client, app: Application
) -> None:
    app_id = await submit(app)
    await accept_and_approve(client, app_id)
    token = await login(client, "zhiban")
    _, queues = await call(client, token, "GET", "/api/v1/queues")
    assert [r["application"]["id"] for r in queues["to_schedule"]] == [app_id]
    kiosk = await kiosk_id(app)
    status, booked = await call(
        client,
        token,
        "POST",
        f"/api/v1/applications/{app_id}/schedule",
        {"kiosk_id": kiosk, "starts_at": "2026-03-02T14:00:00+08:00"},
    )
    assert status == 201, booked
    assert "/v/" in booked["link"]
    assert len(booked["code"]) == 8 and booked["visit"]["state"] == "scheduled"
    _, detail = await call(client, token, "GET", f"/api/v1/applications/{app_id}")
    assert detail["application"]["state"] == "scheduled"
    assert detail["appointment"]["starts_at"].startswith("2026-03-02T06:00")
    assert booked["code"] not in str(detail)

    other = await submit(app, "654")
    await accept_and_approve(client, other)
    # The demo's visit and this one fill March's two; a leader allows a third.
    status, _ = await as_officer(
        client,
        "lingdao",
        "POST",
        f"/api/v1/applications/{other}/exceptions",
        {"kind": "extra_visit", "reason": "家中有急事"},
    )
    assert status == 200
    status, clash = await as_officer(
        client,
        "zhiban",
        "POST",
        f"/api/v1/applications/{other}/schedule",
        {"kiosk_id": kiosk, "starts_at": "2026-03-02T14:30:00+08:00"},
    )
    assert status == 409 and clash["code"] == "slot_taken" and "已有预约" in clash["message"]
    _, detail = await as_officer(client, "zhiban", "GET", f"/api/v1/applications/{other}")
    assert detail["application"]["state"] == "approved" and detail["appointment"] is None


async def test_an_ineligible_detainee_and_an_exhausted_quota_get_409_with_the_reason(
    client: Client, app: Application
) -> None:
    async with app[SERVICE].uow() as uow:
        [facility] = await uow.facilities.list()
        [detainee] = await uow.detainees.list_by_facility(facility.id)
    facts = {"name": "张伟", "admitted_on": detainee.admitted_on.isoformat()}
    app_id = await submit(app)
    await as_officer(client, "shouli", "POST", f"/api/v1/applications/{app_id}/accept")
    status, _ = await as_officer(
        client,
        "admin",
        "PUT",
        f"/api/v1/detainees/{detainee.id}",
        {**facts, "serious_violation": True},
    )
    assert status == 200
    status, refused = await as_officer(
        client, "shenhe", "POST", f"/api/v1/applications/{app_id}/approve"
    )
    assert status == 409 and "严重违反" in refused["message"]
    _, detail = await as_officer(client, "shenhe", "GET", f"/api/v1/applications/{app_id}")
    assert detail["application"]["state"] == "accepted"
    assert detail["ineligible"][0]["code"] == "serious_violation"

    # The demo booked one visit this month; a second fits, a third needs a leader.
    await as_officer(client, "admin", "PUT", f"/api/v1/detainees/{detainee.id}", facts)
    assert (await as_officer(client, "shenhe", "POST", f"/api/v1/applications/{app_id}/approve"))[
        0
    ] == 200
    second = await submit(app, "655")
    await accept_and_approve(client, second)
    kiosk = await kiosk_id(app)
    status, _ = await as_officer(
        client,
        "zhiban",
        "POST",
        f"/api/v1/applications/{app_id}/schedule",
        {"kiosk_id": kiosk, "starts_at": "2026-03-03T10:00:00+08:00"},
    )
    assert status == 201
    status, refused = await as_officer(
        client,
        "zhiban",
        "POST",
        f"/api/v1/applications/{second}/schedule",
        {"kiosk_id": kiosk, "starts_at": "2026-03-04T10:00:00+08:00"},
    )
    assert status == 409 and refused["code"] == "quota_exceeded" and "所领导" in refused["message"]
    _, detail = await as_officer(client, "zhiban", "GET", f"/api/v1/applications/{second}")
    assert detail["application"]["state"] == "approved" and detail["appointment"] is None


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("POST", "/api/v1/kiosks", {}, "field_missing"),
        ("POST", "/api/v1/kiosks", {"name": 5}, "field_type"),
        (
            "POST",
            "/api/v1/officers",
            {"username": "x", "display_name": "某", "password": "long-enough-1", "roles": ["duty"]},
            "username_format",
        ),
        (
            "POST",
            "/api/v1/officers",
            {"username": "newone", "display_name": "某", "password": "short", "roles": ["duty"]},
            "password_too_short",
        ),
        (
            "POST",
            "/api/v1/officers",
            {
                "username": "newone",
                "display_name": "某",
                "password": "long-enough-1",
                "roles": ["boss"],
            },
            "role_unknown",
        ),
        ("POST", "/api/v1/detainees", {"name": "李四", "admitted_on": "2026-13-01"}, "date_format"),
        (
            "PUT",
            "/api/v1/facility/rules",
            {
                "visits_per_period": 2,
                "period": "weekly",
                "max_visit_minutes": 60,
                "max_people": 3,
                "unexpected_face_policy": "alert_only",
                "opening_hours": "08:30-12:00",
            },
            "choice_invalid",
        ),
        (
            "PUT",
            "/api/v1/facility/rules",
            {
                "visits_per_period": 2,
                "period": "calendar_month",
                "max_visit_minutes": 600,
                "max_people": 3,
                "unexpected_face_policy": "alert_only",
                "opening_hours": "08:30-12:00",
            },
            "max_visit_minutes_range",
        ),
        ("PUT", "/api/v1/calendar/2027-02-30", {"is_workday": False}, "date_format"),
    ],
)
async def test_bad_admin_input_gets_a_4xx_with_a_chinese_message_and_changes_nothing(
    client: Client, app: Application, method: str, path: str, body: dict[str, Any], code: str
) -> None:
    async with app[SERVICE].uow() as uow:
        before = len(await uow.audit.records())
    status, answer = await as_officer(client, "admin", method, path, body)
    assert 400 <= status < 500 and answer["code"] == code, answer
    assert any("\u4e00" <= ch <= "\u9fff" for ch in answer["message"])
    async with app[SERVICE].uow() as uow:
        assert len(await uow.audit.records()) == before


async def test_malformed_json_is_a_422_not_a_crash(client: Client) -> None:
    token = await login(client, "admin")
    response = await client.post(
        "/api/v1/kiosks",
        data=b"{not json",
        headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
    )
    assert response.status == 422
    assert (await response.json())["code"] == "json_invalid"


async def test_english_messages_on_request(client: Client) -> None:
    response = await client.post(
        "/api/v1/session?lang=en", json={"username": "zhiban", "password": "wrong-one-123"}
    )
    assert (await response.json())["message"] == "Wrong username or password"


async def test_the_ledger_chain_verifies_after_the_demo_flow(client: Client) -> None:
    status, verdict = await as_officer(client, "zhiban", "GET", "/api/v1/ledger/verify")
    assert status == 200 and verdict["ok"] and verdict["checked"] > 10
