"""A whole visit through the real app: real aiortc peers signal over /ws/visit,
the server relays their media without encoding, the officer watches and cuts,
and the time limit ends the visit — media stops before anything is closed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from pytest_aiohttp.plugin import AiohttpClient

from server.app import create_app
from server.demo import DEMO_PASSWORD, DemoSeed, seed
from server.keys import SERVICE
from server.live import LIVE
from server.media import hooks
from server.settings import Settings
from sessions.clock import ManualClock
from tests.support.domain import SHANGHAI
from tests.support.media import (
    Client,
    MarkedVideoTrack,
    build_source,
    silence,
    source_player,
    wait_until,
)

START = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)
Http = TestClient[Request, Application]


@dataclass
class Signal:
    """One participant's socket: requests by id, events collected in order."""

    ws: ClientWebSocketResponse
    events: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 1

    async def request(self, type_: str, **body: Any) -> dict[str, Any]:
        my_id = self.next_id
        self.next_id += 1
        await self.ws.send_json({"id": my_id, "type": type_, **body})
        while True:
            frame = await asyncio.wait_for(self.ws.receive_json(), 10)
            if frame.get("id") == my_id:
                return frame
            self.events.append(frame)

    async def until(self, type_: str, within: float = 10) -> dict[str, Any]:
        for frame in self.events:
            if frame["type"] == type_:
                return frame
        deadline = time.monotonic() + within
        while True:
            frame = await asyncio.wait_for(self.ws.receive_json(), deadline - time.monotonic())
            self.events.append(frame)
            if frame["type"] == type_:
                return frame

    async def accept_offer(self, participant_id: str, role: str, sdp: str) -> str:
        """Lets tests.support.media.Client negotiate through the signalling."""
        answer = await self.request("offer", sdp=sdp)
        assert answer["type"] == "answer", answer
        return str(answer["sdp"])


@pytest.fixture(scope="module")
def media_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_source(tmp_path_factory.mktemp("live-media"), seconds=20.0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def setup(
    tmp_path: Path, clock: ManualClock, aiohttp_client: AiohttpClient
) -> AsyncIterator[tuple[Http, DemoSeed]]:
    settings = Settings.from_sources(
        {"data_dir": str(tmp_path), "ice_hosts": "127.0.0.1"}, environ={}
    )
    demo = await seed(settings, clock)
    http = await aiohttp_client(create_app(settings, clock=clock))
    yield http, demo


async def join(http: Http, hello: dict[str, Any]) -> Signal:
    ws = await http.ws_connect("/ws/visit")
    signal = Signal(ws)
    welcome = await signal.request("hello", version=1, **hello)
    assert welcome["type"] == "welcome", welcome
    return signal


async def officer_socket(http: Http, visit_id: str) -> Signal:
    response = await http.post(
        "/api/v1/session", json={"username": "zhiban", "password": DEMO_PASSWORD}
    )
    assert response.status == 200
    return await join(http, {"role": "officer", "visit_id": visit_id})


@dataclass
class LiveVisitUnderTest:
    http: Http
    demo: DemoSeed
    relative_signal: Signal
    kiosk_signal: Signal
    officer_signal: Signal
    relative: Client
    kiosk: Client
    officer: Client
    visit_id: str

    def media(self) -> Any:
        return self.http.app[LIVE].rooms[self.visit_id].media


@pytest.fixture
async def live(setup: tuple[Http, DemoSeed], media_file: Path) -> AsyncIterator[LiveVisitUnderTest]:
    http, demo = setup
    relative_signal = await join(
        http, {"role": "relative", "token": demo.visit_token, "code": demo.visit_code}
    )
    visit, _ = await http.app[SERVICE].visit_for_token(demo.visit_token)
    visit_id = visit.id
    kiosk_signal = await join(
        http, {"role": "kiosk", "device_token": demo.kiosk_token, "visit_id": visit_id}
    )
    officer_signal = await officer_socket(http, visit_id)
    assert (await officer_signal.request("start"))["type"] == "ack"
    admitted = await officer_signal.request("admit", reason="民警人工核验身份证件与本人一致")
    assert admitted["type"] == "ack"
    await relative_signal.until("state")

    player = source_player(media_file)
    assert player.audio is not None and player.video is not None
    relative = Client("relative", send=[player.audio, player.video])
    kiosk = Client("kiosk", send=[silence(), MarkedVideoTrack()])
    officer = Client("officer", receive=4, packets=True)
    await relative.connect(relative_signal, "relative")
    await kiosk.connect(kiosk_signal, "kiosk")
    await officer.connect(officer_signal, "officer-watch")
    under_test = LiveVisitUnderTest(
        http,
        demo,
        relative_signal,
        kiosk_signal,
        officer_signal,
        relative,
        kiosk,
        officer,
        visit_id,
    )
    yield under_test
    for client in (relative, kiosk, officer):
        await client.close()


def video_frames(client: Client) -> int:
    return sum(len(r.arrivals) for r in client.received if r.kind == "video")


def all_arrivals(client: Client) -> list[float]:
    return [t for r in client.received for t in r.arrivals]


async def test_media_flows_both_ways_and_to_the_officer_through_the_server_without_encoding(
    live: LiveVisitUnderTest,
) -> None:
    encoders_before = hooks.encoders_created
    await wait_until(lambda: video_frames(live.kiosk) >= 60 and video_frames(live.relative) >= 30)
    await wait_until(
        lambda: (
            len(live.officer.received) == 4
            and all(len(r.arrivals) >= 5 for r in live.officer.received)
        )
    )
    assert len(live.kiosk.track("audio").arrivals) > 10
    assert hooks.encoders_created == encoders_before
    stats = live.media().stats()
    assert stats["relays"]["relative.video"]["received"] > 0


async def test_a_cut_stops_media_to_both_sides_first_and_the_link_dies(
    live: LiveVisitUnderTest,
) -> None:
    await wait_until(lambda: video_frames(live.kiosk) >= 30 and video_frames(live.relative) >= 30)
    cut_at = time.monotonic()
    await live.officer_signal.ws.send_json({"id": 99, "type": "cut", "reason": "谈论案情"})
    ended_relative = await live.relative_signal.until("ended")
    ended_kiosk = await live.kiosk_signal.until("ended")
    for ended in (ended_relative, ended_kiosk):
        assert ended["reason"] == "officer_cut" and ended["message"] == "民警已中止会见"
    await asyncio.sleep(1.0)
    # Nothing reached either side later than a moment after the cut was sent.
    late = [t for c in (live.relative, live.kiosk) for t in all_arrivals(c) if t > cut_at + 0.5]
    assert late == []
    rejoin = Signal(await live.http.ws_connect("/ws/visit"))
    refused = await rejoin.request(
        "hello", version=1, role="relative", token=live.demo.visit_token, code=live.demo.visit_code
    )
    assert refused["type"] == "error" and refused["code"] == "credential_revoked"


async def test_the_time_limit_stops_media_and_ends_the_visit_for_everyone(
    live: LiveVisitUnderTest, clock: ManualClock
) -> None:
    await wait_until(lambda: video_frames(live.kiosk) >= 30)
    clock.advance(timedelta(minutes=61))
    ended = await live.relative_signal.until("ended", within=10)
    assert ended["reason"] == "time_limit" and ended["message"] == "会见时间已到"
    assert (await live.officer_signal.until("ended"))["reason"] == "time_limit"
    stopped = time.monotonic()
    await asyncio.sleep(1.0)
    late = [t for c in (live.relative, live.kiosk) for t in all_arrivals(c) if t > stopped + 0.3]
    assert late == []
