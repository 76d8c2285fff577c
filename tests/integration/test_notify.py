"""Notices over real SQLite to a FAKE SMS gateway: a real aiohttp server started
here that records what it is sent and can be told to fail. Nothing is lost while
the gateway is down, each notice is delivered once it is back, and the 会见码 is
never in the outbox nor in the log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.fernet import Fernet
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from server.app import create_app
from server.demo import seed
from server.notify import (
    DISPATCHER,
    HttpSmsNotifier,
    LogNotifier,
    NoticeDispatcher,
    NoticeMetrics,
)
from server.secrets import FernetSealer
from server.settings import Settings
from sessions.adapters.sql import SqlUnitOfWorkFactory, create_engine, upgrade
from sessions.adapters.sql.tables import outbox
from sessions.clock import ManualClock
from sessions.notifications import Notice, NoticeKind
from sessions.officers import Role
from tests.support.domain import SHANGHAI, World, build_world
from tests.support.net import free_port

TOKEN = "gateway-token-123"
BASE = "https://visit.example.cn"
START = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)

AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]


class FakeGateway:
    """Answers 200 (or ``status`` when told to fail) and records every request."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self.status = 200
        self.hits = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.status != 200:
            return web.json_response({"error": "unavailable"}, status=self.status)
        self.received.append(await request.json())
        self.authorizations.append(request.headers.get("Authorization"))
        return web.json_response({"ok": True})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/sms", self.handle)
        return app


@pytest.fixture
async def gateway(aiohttp_server: AiohttpServer) -> tuple[FakeGateway, str]:
    fake = FakeGateway()
    server = await aiohttp_server(fake.app())
    return fake, str(server.make_url("/sms"))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    made = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db' / 'visitgate.db'}")
    try:
        await upgrade(made)
        yield made
    finally:
        await made.dispose()


@pytest.fixture
async def world(engine: AsyncEngine) -> World:
    made = await build_world(SqlUnitOfWorkFactory(engine))
    made.service.sealer = FernetSealer(Fernet.generate_key())
    return made


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as made:
        yield made


def dispatcher_for(
    world: World, url: str, session: aiohttp.ClientSession, **options: Any
) -> NoticeDispatcher:
    return NoticeDispatcher(
        world.service, HttpSmsNotifier(url, TOKEN, session, **options), world.clock, BASE
    )


async def schedule(world: World) -> tuple[str, str, str]:
    app_id = await world.approved_application()
    scheduled = await world.service.schedule(
        world.officers[Role.DUTY].id, app_id, world.kiosk_id, world.local(2026, 3, 2, 10)
    )
    return app_id, scheduled.secrets.token, scheduled.secrets.code


async def notices(world: World, application_id: str) -> list[Notice]:
    async with world.service.uow() as uow:
        return await uow.outbox.for_application(application_id)


async def test_a_scheduled_visit_reaches_the_gateway_with_link_code_and_token(
    world: World,
    gateway: tuple[FakeGateway, str],
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, url = gateway
    app_id, token, code = await schedule(world)
    caplog.set_level(logging.DEBUG, logger="server.notify")
    assert await dispatcher_for(world, url, session).run_once() == 3

    assert [r["phone"] for r in fake.received] == ["13800138000"] * 3
    assert fake.authorizations == [f"Bearer {TOKEN}"] * 3
    texts = [r["text"] for r in fake.received]
    assert sum("已提交" in t for t in texts) == sum("已通过审核" in t for t in texts) == 1
    (scheduled,) = (t for t in texts if "会见码" in t)
    assert f"{BASE}/v/{token}" in scheduled and f"会见码：{code}" in scheduled
    assert "3月2日 10:00" in scheduled
    assert all(n.sent_at is not None for n in await notices(world, app_id))
    # The log says what happened without the code or the whole number.
    assert "visit_scheduled" in caplog.text and "138****8000" in caplog.text
    assert code not in caplog.text and token not in caplog.text
    assert "13800138000" not in caplog.text


async def test_no_token_means_no_authorization_header(
    world: World, gateway: tuple[FakeGateway, str], session: aiohttp.ClientSession
) -> None:
    fake, url = gateway
    await world.approved_application()
    notifier = HttpSmsNotifier(url, None, session)
    await NoticeDispatcher(world.service, notifier, world.clock, BASE).run_once()
    assert len(fake.received) == 2 and fake.authorizations == [None, None]


async def test_nothing_is_lost_while_the_gateway_is_down_and_each_notice_goes_once(
    world: World,
    gateway: tuple[FakeGateway, str],
    session: aiohttp.ClientSession,
) -> None:
    fake, url = gateway
    app_id, token, code = await schedule(world)
    start = world.clock.now()

    # Nobody listening at all: a connection error.
    unreachable = dispatcher_for(world, f"http://127.0.0.1:{free_port()}/sms", session)
    assert await unreachable.run_once() == 3
    for notice in await notices(world, app_id):
        assert notice.pending and notice.attempts == 1
        assert notice.next_attempt_at == start + timedelta(seconds=30)
        assert notice.last_error is not None and "unreachable" in notice.last_error

    # The gateway answers 503.
    fake.status = 503
    dispatcher = dispatcher_for(world, url, session)
    assert await dispatcher.run_once() == 0  # backing off: not due yet
    assert fake.hits == 0
    world.clock.advance(timedelta(seconds=30))
    assert await dispatcher.run_once() == 3
    assert fake.hits == 3 and fake.received == []
    for notice in await notices(world, app_id):
        assert notice.pending and notice.attempts == 2
        assert notice.next_attempt_at == world.clock.now() + timedelta(seconds=60)
        assert notice.last_error == "gateway answered HTTP 503"

    # Back up: once past the back-off each notice is delivered exactly once.
    fake.status = 200
    world.clock.advance(timedelta(seconds=59))
    assert await dispatcher.run_once() == 0
    world.clock.advance(timedelta(seconds=1))
    assert await dispatcher.run_once() == 3
    assert await dispatcher.run_once() == 0
    world.clock.advance(timedelta(hours=2))
    assert await dispatcher.run_once() == 0
    assert len(fake.received) == 3
    assert sum(code in r["text"] for r in fake.received) == 1
    for notice in await notices(world, app_id):
        assert notice.sent_at is not None and notice.attempts == 2 and notice.last_error is None


async def test_a_gateway_that_hangs_is_a_timeout(
    world: World, aiohttp_server: AiohttpServer, session: aiohttp.ClientSession
) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    slow = web.Application()
    slow.router.add_post("/sms", hang)
    server = await aiohttp_server(slow)
    application = await world.approved_application()
    dispatcher = dispatcher_for(world, str(server.make_url("/sms")), session, timeout=0.2)
    assert await dispatcher.run_once() == 2
    for notice in await notices(world, application):
        assert notice.pending and notice.last_error == "gateway timed out"


async def test_the_outbox_never_holds_the_code_or_the_link(
    world: World,
    engine: AsyncEngine,
    gateway: tuple[FakeGateway, str],
    session: aiohttp.ClientSession,
) -> None:
    fake, url = gateway
    _app_id, token, code = await schedule(world)

    async def raw_rows() -> list[tuple[Any, ...]]:
        async with engine.connect() as conn:
            return [tuple(row) for row in (await conn.execute(select(outbox))).all()]

    fake.status = 503
    await dispatcher_for(world, url, session).run_once()
    pending = await raw_rows()
    fake.status = 200
    world.clock.advance(timedelta(minutes=1))
    await dispatcher_for(world, url, session).run_once()
    sent = await raw_rows()

    assert len(pending) == len(sent) == 3
    assert any(code in r["text"] for r in fake.received)
    for row in pending + sent:
        for value in row:
            assert code not in str(value) and token not in str(value)


async def test_the_app_runs_the_dispatcher_with_the_configured_gateway(
    tmp_path: Path, aiohttp_client: Any, gateway: tuple[FakeGateway, str]
) -> None:
    fake, url = gateway
    settings = Settings.from_sources(
        {"data_dir": str(tmp_path), "sms_gateway_url": url, "public_url": BASE},
        environ={"VISITGATE_SMS_GATEWAY_TOKEN": TOKEN},
    )
    clock = ManualClock(START)
    demo = await seed(settings, clock)
    client = await aiohttp_client(create_app(settings, clock=clock))
    dispatcher = client.app[DISPATCHER]
    assert isinstance(dispatcher.notifier, HttpSmsNotifier)

    for _ in range(200):  # the first round starts with the app
        if any(demo.visit_code in r["text"] for r in fake.received):
            break
        await asyncio.sleep(0.05)
    assert any(demo.visit_code in r["text"] and f"{BASE}/v/" in r["text"] for r in fake.received)
    assert set(fake.authorizations) == {f"Bearer {TOKEN}"}
    metrics = await (await client.get("/metrics")).text()
    assert 'visitgate_notices_sent_total{kind="visit_scheduled"} 1.0' in metrics


async def test_without_a_gateway_the_app_logs_notices_with_phone_link_and_code_masked(
    tmp_path: Path, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.notify")
    settings = Settings.from_sources({"data_dir": str(tmp_path)}, environ={})
    clock = ManualClock(START)
    demo = await seed(settings, clock)
    client = await aiohttp_client(create_app(settings, clock=clock))
    assert isinstance(client.app[DISPATCHER].notifier, LogNotifier)

    for _ in range(200):  # the demo's notices go out in the app's first round
        if "SMS to 138****8000: 【视频会见】" in caplog.text and "会见码" in caplog.text:
            break
        await asyncio.sleep(0.05)
    assert "SMS to 138****8000: 【视频会见】" in caplog.text and "会见码" in caplog.text
    assert "/v/…" in caplog.text and "********" in caplog.text
    assert demo.visit_code not in caplog.text and demo.visit_token not in caplog.text
    await LogNotifier().send("13800138000", "【视频会见】测试短信")
    assert "SMS to 138****8000: 【视频会见】测试短信" in caplog.text
    assert "13800138000" not in caplog.text


async def test_metrics_count_sent_and_failed_notices_by_kind(
    world: World, gateway: tuple[FakeGateway, str], session: aiohttp.ClientSession
) -> None:
    fake, url = gateway
    registry = CollectorRegistry()
    notifier = HttpSmsNotifier(url, TOKEN, session)
    dispatcher = NoticeDispatcher(
        world.service, notifier, world.clock, BASE, NoticeMetrics.create(registry)
    )
    await world.approved_application()
    fake.status = 503
    await dispatcher.run_once()
    fake.status = 200
    world.clock.advance(timedelta(minutes=1))
    await dispatcher.run_once()
    for kind in (NoticeKind.APPLICATION_RECEIVED, NoticeKind.APPLICATION_APPROVED):
        labels = {"kind": kind.value}
        assert registry.get_sample_value("visitgate_notices_failed_total", labels) == 1.0
        assert registry.get_sample_value("visitgate_notices_sent_total", labels) == 1.0
