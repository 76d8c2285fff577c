"""The app over a real SQLite file: health, metrics, and the demo's links
(relative's link + 会见码 → waiting room; kiosk page) as a browser sees them."""

from __future__ import annotations

from datetime import timedelta

from aiohttp.test_utils import TestClient

from server.demo import DemoSeed
from tests.support.domain import APP_START as START


async def test_healthz_reports_the_database_and_metrics_count_it(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "database": "ok"}
    metrics = await (await client.get("/metrics")).text()
    assert 'visitgate_http_requests_total{route="/healthz",status="200"} 1.0' in metrics
    assert "visitgate_database_up 1.0" in metrics


async def test_the_demo_visit_is_booked_ten_to_fifteen_minutes_ahead(demo: DemoSeed) -> None:
    assert timedelta(minutes=10) <= demo.starts_at - START <= timedelta(minutes=15)
    assert len(demo.visit_code) == 8 and demo.visit_code.isdigit()


async def test_the_relative_link_asks_for_the_code_in_chinese(
    client: TestClient, demo: DemoSeed
) -> None:
    page = await client.get(f"/v/{demo.visit_token}")
    assert page.status == 200
    html = await page.text()
    assert "请输入短信中的8位会见码" in html and "演示市看守所" in html
    assert page.headers["Referrer-Policy"] == "same-origin"


async def test_a_wrong_code_is_refused_and_the_right_one_opens_the_waiting_room(
    client: TestClient, demo: DemoSeed
) -> None:
    wrong = "0" * 8 if demo.visit_code != "0" * 8 else "1" * 8
    refused = await client.post(f"/v/{demo.visit_token}", data={"code": wrong})
    assert refused.status == 403
    assert "会见码不正确（还可尝试9次）" in await refused.text()
    admitted = await client.post(f"/v/{demo.visit_token}", data={"code": demo.visit_code})
    assert admitted.status == 200
    html = await admitted.text()
    assert "已进入等候室" in html and "家属已进入等候" in html


async def test_an_unknown_link_gets_a_clear_error_not_a_crash(client: TestClient) -> None:
    response = await client.get("/v/not-a-real-token")
    assert response.status == 403
    assert "会见链接无效" in await response.text()


async def test_english_is_available(client: TestClient, demo: DemoSeed) -> None:
    page = await client.get(f"/v/{demo.visit_token}?lang=en")
    assert "Enter the 8-digit visit code" in await page.text()


async def test_the_kiosk_page_shows_who_is_calling_and_refuses_a_bad_token(
    client: TestClient, demo: DemoSeed
) -> None:
    page = await client.get("/kiosk", params={"token": demo.kiosk_token})
    assert page.status == 200
    html = await page.text()
    assert "李秀英（父母）" in html and "张伟" in html and "一号会见终端" in html
    refused = await client.get("/kiosk", params={"token": "forged"})
    assert refused.status == 403
    assert "终端未授权" in await refused.text()
