"""Live-visit signalling over real WebScreens: the real app on a real SQLite
file, seeded like the demo, with a ManualClock the tests move by hand.

What is checked is what the people on each screen would see: who may join,
what every side is told, the countdown and its warnings, the cut, and that
leaving, reconnecting or restarting the server never resets the clock. SDP is
not exercised here (no media plane is configured: offers get
``media_unavailable``); the media plane has its own tests."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from pytest_aiohttp.plugin import AiohttpClient

from server.app import create_app
from server.demo import DEMO_PASSWORD, DemoSeed, seed
from server.keys import SERVICE
from server.live import LIVE, LiveTiming
from server.settings import Settings
from sessions.clock import ManualClock
from sessions.credentials import token_digest
from sessions.facilities import FacilityKind
from sessions.officers import Role
from tests.support.domain import SHANGHAI

START = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)
PATH = "/ws/visit"
Client = TestClient[Request, Application]
#: What the console prefills for the officer's override of the face gate.
ADMIT_REASON = "民警人工核验身份证件与本人一致"
#: Short periods so the countdown and the sweeper react within a test's patience.
FAST = LiveTiming(sweep_interval=0.05, countdown_interval=0.05, tick_every=0.3, auth_timeout=2.0)


# -- fixtures -----------------------------------------------------------------------
@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_sources(
        {"data_dir": str(tmp_path), "stun": "stun:stun.facility.example:3478"}, environ={}
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def demo(settings: Settings, clock: ManualClock) -> DemoSeed:
    seeded = await seed(settings, clock)
    # 14 minutes before the slot: the link opens 15 minutes early.
    clock.set(seeded.starts_at - timedelta(minutes=14))
    return seeded


def build_app(settings: Settings, clock: ManualClock) -> Application:
    app = create_app(settings, clock=clock)
    app[LIVE].timing = FAST
    return app


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, settings: Settings, clock: ManualClock, demo: DemoSeed
) -> Client:
    return await aiohttp_client(build_app(settings, clock))


@pytest.fixture
async def visit_id(client: Client, demo: DemoSeed) -> str:
    visit, _credential = await client.app[SERVICE].visit_for_token(demo.visit_token)
    return visit.id


# -- helpers ------------------------------------------------------------------------
class Screen:
    """A client socket that keeps the frames a helper read past (so waiting for a
    command's answer never loses the broadcast that arrived before it)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pending: list[dict[str, Any]] = []

    async def send_json(self, data: dict[str, Any]) -> None:
        await self.ws.send_json(data)

    async def send_str(self, data: str) -> None:
        await self.ws.send_str(data)

    async def close(self) -> None:
        await self.ws.close()

    async def _read(self) -> dict[str, Any]:
        message = await self.ws.receive()
        assert message.type is WSMsgType.TEXT, f"expected a frame, got {message.type}"
        frame = message.json()
        assert isinstance(frame, dict)
        return frame

    async def next(self, match: Any) -> dict[str, Any]:
        for index, frame in enumerate(self.pending):
            if match(frame):
                return self.pending.pop(index)
        while True:
            frame = await self._read()
            if match(frame):
                return frame
            self.pending.append(frame)


async def recv(ws: Screen, within: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        return await ws.next(lambda frame: True)


async def until(ws: Screen, kind: str, within: float = 5.0) -> dict[str, Any]:
    """The next frame of ``kind``; others stay pending for later reads."""
    async with asyncio.timeout(within):
        return await ws.next(lambda frame: frame["type"] == kind)


async def closed(ws: Screen, within: float = 5.0) -> int | None:
    """Read until the server closes the socket; its close code."""
    async with asyncio.timeout(within):
        while True:
            message = await ws.ws.receive()
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return ws.ws.close_code


async def connect(client: Client) -> Screen:
    return Screen(await client.ws_connect(PATH))


async def hello(client: Client, **fields: Any) -> tuple[Screen, dict[str, Any]]:
    ws = await connect(client)
    await ws.send_json({"id": 1, "type": "hello", "version": 1, **fields})
    return ws, await recv(ws)


async def relative(client: Client, demo: DemoSeed) -> tuple[Screen, dict[str, Any]]:
    return await hello(client, role="relative", token=demo.visit_token, code=demo.visit_code)


async def kiosk(client: Client, demo: DemoSeed, visit_id: str) -> tuple[Screen, dict[str, Any]]:
    return await hello(client, role="kiosk", device_token=demo.kiosk_token, visit_id=visit_id)


async def login(client: Client, username: str = "zhiban") -> None:
    response = await client.post(
        "/api/v1/session", json={"username": username, "password": DEMO_PASSWORD}
    )
    assert response.status == 200, await response.text()


async def officer(
    client: Client, visit_id: str, username: str = "zhiban"
) -> tuple[Screen, dict[str, Any]]:
    await login(client, username)
    return await hello(client, role="officer", visit_id=visit_id)


async def command(ws: Screen, msg_id: int, kind: str, **fields: Any) -> dict[str, Any]:
    """Send a command and return the frame answering it (same id)."""
    await ws.send_json({"id": msg_id, "type": kind, **fields})
    async with asyncio.timeout(5):
        return await ws.next(lambda frame: frame.get("id") == msg_id)


async def everyone_in(
    client: Client, demo: DemoSeed, visit_id: str
) -> tuple[Screen, Screen, Screen]:
    rel, welcome = await relative(client, demo)
    assert welcome["type"] == "welcome", welcome
    kio, welcome = await kiosk(client, demo, visit_id)
    assert welcome["type"] == "welcome", welcome
    off, welcome = await officer(client, visit_id)
    assert welcome["type"] == "welcome", welcome
    return rel, kio, off


async def go_live(off: Screen) -> None:
    assert (await command(off, 100, "start"))["type"] == "ack"
    assert (await command(off, 101, "admit", reason=ADMIT_REASON))["type"] == "ack"


async def live_state(ws: Screen) -> dict[str, Any]:
    async with asyncio.timeout(5):
        return await ws.next(lambda frame: frame["type"] == "state" and frame["state"] == "live")


# -- the handshake ----------------------------------------------------------------------
async def test_a_command_before_hello_gets_an_error_and_the_socket_stays_open(
    client: Client, demo: DemoSeed
) -> None:
    ws = await connect(client)
    await ws.send_json({"id": 7, "type": "chat", "text": "你好"})
    error = await recv(ws)
    assert error == {
        "id": 7,
        "type": "error",
        "code": "hello_required",
        "message": "请先发送 hello 握手消息",
    }
    await ws.send_json(
        {
            "id": 8,
            "type": "hello",
            "version": 1,
            "role": "relative",
            "token": demo.visit_token,
            "code": demo.visit_code,
        }
    )
    welcome = await recv(ws)
    assert welcome["type"] == "welcome" and welcome["id"] == 8
    assert welcome["visit"]["state"] == "lobby"
    assert welcome["ice_servers"] == [{"urls": ["stun:stun.facility.example:3478"]}]
    await ws.close()


async def test_a_wrong_protocol_version_is_refused_and_closed(
    client: Client, demo: DemoSeed
) -> None:
    ws, error = await hello(
        client, role="relative", token=demo.visit_token, code=demo.visit_code, version=99
    )
    assert error["type"] == "error" and error["code"] == "version_unsupported"
    assert await closed(ws) == 4002


async def test_a_socket_without_hello_is_closed_after_the_auth_timeout(
    client: Client,
) -> None:
    ws = await connect(client)
    error = await recv(ws, within=FAST.auth_timeout + 3)
    assert error["code"] == "auth_timeout"
    assert await closed(ws) == 4001


async def test_a_foreign_origin_is_refused_before_the_upgrade(client: Client) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(PATH, headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403
    same_host = await client.ws_connect(
        PATH, headers={"Origin": f"http://{client.host}:{client.port}"}
    )
    await same_host.close()


async def test_unknown_types_and_malformed_frames_get_errors_and_the_socket_keeps_working(
    client: Client, demo: DemoSeed
) -> None:
    ws, welcome = await relative(client, demo)
    assert welcome["type"] == "welcome"
    await ws.send_str("{not json")
    assert (await recv(ws))["code"] == "bad_json"
    await ws.send_str("[1, 2]")
    assert (await recv(ws))["code"] == "bad_message"
    assert (await command(ws, 2, "teleport"))["code"] == "unknown_type"
    assert (await command(ws, 3, "chat"))["code"] == "invalid_field"
    assert (await command(ws, 4, "chat", text=42))["code"] == "invalid_field"
    assert (await command(ws, 5, "hello", version=1, role="relative"))["code"] == ("already_joined")
    refused = await command(ws, 6, "cut", reason="x")
    assert refused["code"] == "role_forbidden"
    assert refused["message"] == "您的身份不能执行此操作"
    assert await command(ws, 9, "ping") == {"id": 9, "type": "pong"}
    await ws.close()


# -- who may join ----------------------------------------------------------------------
async def test_a_wrong_code_is_refused_in_chinese_and_counted(
    client: Client, demo: DemoSeed
) -> None:
    wrong = "00000000" if demo.visit_code != "00000000" else "11111111"
    ws, error = await hello(client, role="relative", token=demo.visit_token, code=wrong)
    assert error["type"] == "error" and error["code"] == "code_wrong"
    assert error["message"].startswith("会见码不正确")
    assert await closed(ws) == 4003
    async with client.app[SERVICE].uow() as uow:
        credential = await uow.credentials.get_by_token_hash(token_digest(demo.visit_token))
    assert credential is not None and credential.total_failures == 1


async def test_the_link_does_not_open_before_the_appointment_window(
    client: Client, demo: DemoSeed, clock: ManualClock
) -> None:
    clock.set(demo.starts_at - timedelta(minutes=16))
    ws, error = await relative(client, demo)
    assert error["code"] == "credential_not_yet_valid"
    await ws.close()


async def test_a_kiosk_may_only_join_visits_on_its_own_kiosk(
    client: Client, demo: DemoSeed, visit_id: str
) -> None:
    service = client.app[SERVICE]
    visit = await service.get_visit(visit_id)
    _other, other_token = await service.register_kiosk(visit.facility_id, "二号会见终端")
    ws, error = await hello(client, role="kiosk", device_token=other_token, visit_id=visit_id)
    assert error["code"] == "wrong_kiosk"
    assert await closed(ws) == 4003
    ws, error = await hello(client, role="kiosk", device_token="forged", visit_id=visit_id)
    assert error["code"] == "kiosk_token"
    await ws.close()
    ws, welcome = await kiosk(client, demo, visit_id)
    assert welcome["type"] == "welcome" and welcome["role"] == "kiosk"
    await ws.close()


async def test_only_signed_in_duty_officers_and_leaders_of_the_facility_may_watch(
    client: Client, demo: DemoSeed, visit_id: str
) -> None:
    ws, error = await hello(client, role="officer", visit_id=visit_id)
    assert error["code"] == "login_required"
    await ws.close()

    ws, error = await officer(client, visit_id, "shenhe")  # 审核岗: not the duty post
    assert error["code"] == "officer_role"
    await ws.close()

    service = client.app[SERVICE]
    other = await service.create_facility("另一看守所", FacilityKind.DETENTION_CENTRE)
    await service.create_officer(
        facility_id=other.id,
        username="other-duty",
        display_name="孙强",
        password=DEMO_PASSWORD,
        roles=frozenset({Role.DUTY}),
    )
    ws, error = await officer(client, visit_id, "other-duty")
    assert error["code"] == "other_facility"
    assert await closed(ws) == 4003

    ws, welcome = await officer(client, visit_id, "lingdao")  # 所领导 may watch
    assert welcome["type"] == "welcome" and welcome["role"] == "officer"
    refused = await command(ws, 2, "start")  # ...but starting is the duty post's
    assert refused["code"] == "role_required"
    await ws.close()


# -- the visit ------------------------------------------------------------------------
async def test_a_whole_visit_from_start_to_the_time_limit(
    client: Client, demo: DemoSeed, visit_id: str, clock: ManualClock
) -> None:
    rel, kio, off = await everyone_in(client, demo, visit_id)

    # Before the officer starts (开机联线), no SDP is taken.
    assert (await command(rel, 1, "offer", sdp="v=0"))["code"] == "offer_state"
    assert (await command(rel, 2, "chat", text="在吗"))["code"] == "chat_not_live"

    await go_live(off)
    # A malformed offer is refused with an error frame; the socket stays usable.
    malformed = await command(rel, 3, "offer", sdp="v=0\r\nthis is not sdp")
    assert malformed["type"] == "error" and malformed["code"] == "offer_rejected"
    for ws in (rel, kio, off):
        state = await live_state(ws)
        assert state["remaining_seconds"] == 3600
        assert state["limit_seconds"] == 3600

    # Chat: relative to kiosk and the watching officer, never interpreted as HTML.
    html = "<b>妈</b><script>alert(1)</script>"
    assert (await command(rel, 3, "chat", text=html + "\x00\x07"))["type"] == "ack"
    for ws in (kio, off):
        said = await until(ws, "chat")
        assert said["sender"] == "relative" and said["text"] == html
    too_long = await command(kio, 4, "chat", text="长" * 501)
    assert too_long["type"] == "error" and too_long["field"] == "text"

    # A warning on both screens.
    assert (await command(off, 5, "warn", text="请勿谈论案情"))["type"] == "ack"
    for ws in (rel, kio):
        assert (await until(ws, "warning"))["text"] == "请勿谈论案情"

    # Mute: the muted side is told.
    assert (await command(off, 6, "mute", side="relative", muted=True))["type"] == "ack"
    muted = await until(rel, "muted")
    assert muted == {"id": None, "type": "muted", "side": "relative", "muted": True}

    # Ticks keep both countdowns honest.
    assert "remaining_seconds" in await until(kio, "tick")

    clock.advance(timedelta(minutes=55))
    for ws in (rel, kio):
        warning = await until(ws, "time_warning")
        assert warning["minutes_left"] == 5 and warning["remaining_seconds"] == 300
    clock.advance(timedelta(minutes=4))
    for ws in (rel, kio):
        assert (await until(ws, "time_warning"))["minutes_left"] == 1
    clock.advance(timedelta(minutes=1, seconds=1))
    for ws in (rel, kio, off):
        ended = await until(ws, "ended")
        assert ended["reason"] == "time_limit"
        assert ended["message"] == "会见时间已到"
        assert ended["remaining_seconds"] == 0
        assert await closed(ws) == 1000
    visit = await client.app[SERVICE].get_visit(visit_id)
    assert visit.end_reason is not None and visit.end_reason.value == "time_limit"


async def test_chat_warnings_and_mutes_are_in_the_ledger(
    client: Client, demo: DemoSeed, visit_id: str
) -> None:
    rel, kio, off = await everyone_in(client, demo, visit_id)
    await go_live(off)
    await command(kio, 1, "chat", text="我很好")
    await command(off, 2, "warn", text="注意言辞")
    await command(off, 3, "mute", side="kiosk", muted=True)
    async with client.app[SERVICE].uow() as uow:
        records = await uow.audit.records()
    named = {(r.event, r.subject_id) for r in records}
    for event in ("visit.chat_sent", "visit.warned", "visit.mute_changed", "visit.went_live"):
        assert (event, visit_id) in named
    [went_live] = [r for r in records if r.event == "visit.went_live"]
    assert went_live.actor.startswith("officer:")
    for ws in (rel, kio, off):
        await ws.close()


async def test_a_cut_ends_the_visit_on_every_screen_and_the_link_stops_working(
    client: Client, demo: DemoSeed, visit_id: str
) -> None:
    rel, kio, off = await everyone_in(client, demo, visit_id)
    await go_live(off)
    await off.send_json({"id": 9, "type": "cut", "reason": "出现未经批准人员"})
    for ws in (rel, kio, off):
        ended = await until(ws, "ended")
        assert ended["reason"] == "officer_cut"
        assert ended["message"] == "民警已中止会见"
        assert ended["note"] == "出现未经批准人员"
        assert await closed(ws) == 1000
    again, error = await relative(client, demo)
    assert error["code"] == "credential_revoked"
    await again.close()
    kiosk_again, error = await kiosk(client, demo, visit_id)
    assert error["code"] == "visit_ended"
    await kiosk_again.close()


# -- the officer's identity decisions --------------------------------------------------------
async def identity_records(client: Client, visit_id: str) -> list[Any]:
    async with client.app[SERVICE].uow() as uow:
        records = await uow.audit.records()
    return [r for r in records if r.event == "visit.identity_checked" and r.subject_id == visit_id]


async def test_admitting_needs_a_reason_and_the_ledger_keeps_it(
    client: Client, demo: DemoSeed, visit_id: str
) -> None:
    rel, kio, off = await everyone_in(client, demo, visit_id)
    assert (await command(off, 1, "start"))["type"] == "ack"
    missing = await command(off, 2, "admit")
    assert missing["type"] == "error" and missing["code"] == "invalid_field"
    assert missing["field"] == "reason"
    blank = await command(off, 3, "admit", reason="  \u202e ")
    assert blank["code"] == "reason_required" and blank["message"] == "请填写人工核验的理由"
    too_long = await command(off, 4, "admit", reason="理" * 201)
    assert too_long["code"] == "too_long" and too_long["field"] == "reason"
    assert await identity_records(client, visit_id) == []

    assert (await command(off, 5, "admit", reason="证件照片较旧，人工比对一致"))["type"] == "ack"
    for ws in (rel, kio, off):
        await live_state(ws)
    (checked,) = await identity_records(client, visit_id)
    officer_id = checked.actor.removeprefix("officer:")
    assert checked.actor.startswith("officer:")
    assert checked.data == {
        "passed": True,
        "override": True,
        "reason": "证件照片较旧，人工比对一致",
        "officer": officer_id,
    }
    async with client.app[SERVICE].uow() as uow:
        records = await uow.audit.records()
    [went_live] = [r for r in records if r.event == "visit.went_live"]
    assert went_live.actor == checked.actor and went_live.seq == checked.seq + 1
    for ws in (rel, kio, off):
        await ws.close()


async def test_admit_and_deny_are_refused_outside_the_identity_check(
    client: Client, demo: DemoSeed, visit_id: str
) -> None:
    rel, kio, off = await everyone_in(client, demo, visit_id)
    early = await command(off, 1, "admit", reason=ADMIT_REASON)
    assert early["code"] == "identity_not_checking"
    assert early["message"] == "只有在身份核验阶段才能作出核验决定"
    assert (await command(off, 2, "deny"))["code"] == "identity_not_checking"
    await go_live(off)
    await live_state(off)
    late = await command(off, 3, "deny", reason="晚了")
    assert late["code"] == "identity_not_checking"
    assert (await command(off, 4, "admit", reason=ADMIT_REASON))["code"] == "identity_not_checking"
    assert (await client.app[SERVICE].get_visit(visit_id)).state.value == "live"
    # A refused deny never ends anything: the relative can still chat.
    assert (await command(rel, 5, "chat", text="还在"))["type"] == "ack"
    for ws in (rel, kio, off):
        await ws.close()


async def test_deny_ends_the_visit_as_identity_failed_and_revokes_the_link(
    client: Client, demo: DemoSeed, visit_id: str
) -> None:
    rel, kio, off = await everyone_in(client, demo, visit_id)
    assert (await command(off, 1, "start"))["type"] == "ack"
    await off.send_json({"id": 2, "type": "deny", "reason": "本人与身份证照片不符"})
    for ws in (rel, kio, off):
        ended = await until(ws, "ended")
        assert ended["reason"] == "identity_failed"
        assert ended["message"] == "身份核验未通过"
        assert ended["note"] == "本人与身份证照片不符"
        assert await closed(ws) == 1000
    (checked,) = await identity_records(client, visit_id)
    assert checked.actor.startswith("officer:")
    assert checked.data["passed"] is False and checked.data["override"] is True
    assert checked.data["reason"] == "本人与身份证照片不符"
    visit = await client.app[SERVICE].get_visit(visit_id)
    assert visit.end_reason is not None and visit.end_reason.value == "identity_failed"
    assert visit.ended_by == checked.actor
    again, error = await relative(client, demo)
    assert error["code"] == "credential_revoked"
    await again.close()


async def test_deny_without_a_reason_still_ends_the_visit(
    client: Client, demo: DemoSeed, visit_id: str
) -> None:
    rel, kio, off = await everyone_in(client, demo, visit_id)
    assert (await command(off, 1, "start"))["type"] == "ack"
    await off.send_json({"id": 2, "type": "deny"})
    ended = await until(rel, "ended")
    assert ended["reason"] == "identity_failed" and "note" not in ended
    (checked,) = await identity_records(client, visit_id)
    assert checked.data["passed"] is False and checked.data["reason"] is None
    for ws in (rel, kio, off):
        await ws.close()


async def test_only_the_duty_post_may_admit_or_deny(
    client: Client, demo: DemoSeed, visit_id: str
) -> None:
    rel, kio, off = await everyone_in(client, demo, visit_id)
    assert (await command(off, 1, "start"))["type"] == "ack"
    leader, welcome = await officer(client, visit_id, "lingdao")  # 所领导 may watch
    assert welcome["type"] == "welcome"
    for msg_id, kind, fields in ((2, "admit", {"reason": ADMIT_REASON}), (3, "deny", {})):
        refused = await command(leader, msg_id, kind, **fields)
        assert refused["type"] == "error" and refused["code"] == "role_required", refused
    for ws in (rel, kio):
        refused = await command(ws, 4, "deny")
        assert refused["code"] == "role_forbidden"
    visit = await client.app[SERVICE].get_visit(visit_id)
    assert visit.state.value == "identity_check"
    assert await identity_records(client, visit_id) == []
    for ws in (rel, kio, off, leader):
        await ws.close()


async def test_a_reconnect_replaces_the_old_socket_and_keeps_the_clock(
    client: Client, demo: DemoSeed, visit_id: str, clock: ManualClock
) -> None:
    rel, kio, off = await everyone_in(client, demo, visit_id)
    await go_live(off)
    await live_state(rel)
    clock.advance(timedelta(minutes=7))
    rel2, welcome = await relative(client, demo)
    assert welcome["type"] == "welcome"
    assert welcome["visit"]["state"] == "live"
    assert welcome["visit"]["remaining_seconds"] == 3600 - 7 * 60
    assert (await until(rel, "replaced"))["type"] == "replaced"
    assert await closed(rel) == 4000
    # The new socket is the one the visit talks to.
    await command(kio, 1, "chat", text="还在吗")
    assert (await until(rel2, "chat"))["text"] == "还在吗"
    for ws in (rel2, kio, off):
        await ws.close()


async def test_the_clock_survives_a_server_restart(
    aiohttp_client: AiohttpClient,
    client: Client,
    demo: DemoSeed,
    visit_id: str,
    clock: ManualClock,
    settings: Settings,
) -> None:
    rel, kio, off = await everyone_in(client, demo, visit_id)
    await go_live(off)
    await live_state(rel)
    clock.advance(timedelta(minutes=20))
    # The server stops while the screens keep reading: each is told it is going away.
    stopping = asyncio.create_task(client.server.close())
    codes = await asyncio.gather(closed(rel), closed(kio), closed(off))
    await stopping
    assert codes == [1001, 1001, 1001]

    restarted = await aiohttp_client(build_app(settings, clock))
    rel, welcome = await relative(restarted, demo)
    assert welcome["visit"]["state"] == "live"
    assert welcome["visit"]["remaining_seconds"] == 40 * 60
    kio, welcome = await kiosk(restarted, demo, visit_id)
    assert welcome["visit"]["remaining_seconds"] == 40 * 60
    for ws in (rel, kio):
        await ws.close()


async def test_the_time_limit_holds_with_nobody_connected(
    client: Client, demo: DemoSeed, visit_id: str, clock: ManualClock
) -> None:
    rel, kio, off = await everyone_in(client, demo, visit_id)
    await go_live(off)
    await live_state(off)
    for ws in (rel, kio, off):
        await ws.close()
    clock.advance(timedelta(minutes=61))
    await client.app[LIVE].sweep_once()  # what the sweeper does every second
    assert (await client.app[SERVICE].get_visit(visit_id)).end_reason is not None
    again, error = await relative(client, demo)
    assert error["code"] == "credential_revoked"
    await again.close()


async def test_english_clients_get_english_messages(client: Client, demo: DemoSeed) -> None:
    ws, welcome = await hello(
        client, role="relative", token=demo.visit_token, code=demo.visit_code, lang="en"
    )
    assert welcome["visit"]["state_label"] == "lobby"
    error = await command(ws, 2, "teleport")
    assert error["message"].startswith("Unknown message type")
    await ws.close()
