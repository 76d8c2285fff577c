"""Face-check snapshots in the officers' console: served to officers of the visit's
facility only, never cached, never found by a crafted name; and the watch page lists
the visit's face checks from the ledger with their pictures."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from PIL import Image
from pytest_aiohttp.plugin import AiohttpClient

from server.app import create_app
from server.demo import DEMO_PASSWORD, DemoSeed, seed
from server.keys import SERVICE
from server.settings import Settings
from server.snapshots import SNAPSHOTS
from sessions.clock import ManualClock
from sessions.facilities import FacilityKind
from sessions.officers import Role
from tests.integration.test_console import log_in_as
from tests.support.domain import SHANGHAI

START = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)
Client = TestClient[Request, Application]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_sources({"data_dir": str(tmp_path)}, environ={})


@pytest.fixture
async def demo(settings: Settings) -> DemoSeed:
    return await seed(settings, ManualClock(START))


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, settings: Settings, demo: DemoSeed) -> Client:
    # The relative may join from 15 minutes before the slot: the visit is then in progress.
    clock = ManualClock(demo.starts_at - timedelta(minutes=10))
    return await aiohttp_client(create_app(settings, clock=clock))


def picture() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (180, 40, 40)).save(out, format="JPEG")
    return out.getvalue()


async def visit_of(client: Client, demo: DemoSeed) -> tuple[str, str]:
    visit, _ = await client.app[SERVICE].visit_for_token(demo.visit_token)
    return visit.id, visit.facility_id


async def test_a_snapshot_is_served_only_to_officers_of_the_visits_facility(
    client: Client, demo: DemoSeed, settings: Settings
) -> None:
    visit_id, facility_id = await visit_of(client, demo)
    jpeg = picture()
    ref = client.app[SNAPSHOTS].save(facility_id, visit_id, jpeg)
    assert (settings.data_dir / "snapshots" / facility_id / ref).is_file()
    url = f"/console/visits/{visit_id}/snapshots/{ref.split('/')[1]}"

    assert (await client.get(url, allow_redirects=False)).status == 302  # sign in first
    await log_in_as(client, "zhiban")
    mine = await client.get(url)
    assert mine.status == 200 and await mine.read() == jpeg
    assert mine.headers["Content-Type"] == "image/jpeg"
    assert "no-store" in mine.headers["Cache-Control"]
    assert mine.headers["X-Content-Type-Options"] == "nosniff"

    unknown = await client.get(f"/console/visits/{visit_id}/snapshots/0123456789abcdef.jpg")
    assert unknown.status == 404
    no_visit = await client.get(f"/console/visits/{'f' * 32}/snapshots/{ref.split('/')[1]}")
    assert no_visit.status == 404
    for crafted in (
        f"/console/visits/{visit_id}/snapshots/..%2F..%2F..%2Fsecret.key",
        f"/console/visits/{visit_id}/snapshots/%2E%2E",
        f"/console/visits/{visit_id}/snapshots/{ref.split('/')[1]}%00.png",
    ):
        assert (await client.get(crafted)).status == 404, crafted

    service = client.app[SERVICE]
    other = await service.create_facility("另一市拘留所", FacilityKind.DETENTION_HOUSE)
    await service.create_officer(
        facility_id=other.id,
        username="other-duty",
        display_name="外所民警",
        password=DEMO_PASSWORD,
        roles=frozenset({Role.DUTY}),
    )
    await log_in_as(client, "other-duty")
    refused = await client.get(url)
    assert refused.status == 403
    assert "无权" in await refused.text()


async def test_the_watch_page_lists_the_visits_face_checks_with_their_snapshots(
    client: Client, demo: DemoSeed
) -> None:
    visit_id, facility_id = await visit_of(client, demo)
    service = client.app[SERVICE]
    await service.join_visit(demo.visit_token, demo.visit_code)  # lobby: in progress
    ref = client.app[SNAPSHOTS].save(facility_id, visit_id, picture())
    await service.raise_face_alert(
        visit_id,
        "relative",
        box=[300, 80, 420, 200],
        distance=0.7312,
        distances={"visitor-1": 0.7312},
        votes=3,
        window=4,
        policy="alert_only",
        snapshot_ref=ref,
    )
    await service.record_presence(
        visit_id, "relative", person="visitor-1", status="absent", seconds=12.0, snapshot_ref=None
    )
    await log_in_as(client, "zhiban")
    page = await client.get(f"/console/visits/{visit_id}")
    assert page.status == 200
    html = await page.text()
    assert "img-src 'self' data:" in page.headers["Content-Security-Policy"]
    assert "script-src" not in page.headers["Content-Security-Policy"]  # still 'self' only
    assert "陌生人脸告警" in html and "家属端出现未经核准的人员" in html
    assert "0.731" in html and "李秀英 0.731" in html
    assert f'src="/console/visits/{visit_id}/snapshots/{ref.split("/")[1]}"' in html
    assert "家属端李秀英离开画面或无法核验" in html
    assert 'value="民警人工核验身份证件与本人一致"' in html
    assert 'data-person="visitor-1"' in html
