"""Face checks on a live visit through the real app: a real aiortc relative sends a
camera composed from the test photos; the server taps its video, the recognition
worker (one process, the real models) judges it, and the visit goes live by
itself once the ID card and the live face match the visitor's enrolment; a face
nobody approved raises an alert, with a snapshot, on the officer's socket."""

from __future__ import annotations

import fractions
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc.mediastreams import VideoStreamTrack

from recognition.models import Image
from server.app import create_app
from server.demo import demo_id_number, seed
from server.keys import SERVICE
from server.live import LIVE
from server.recognition_live import RECOGNITION
from server.settings import Settings
from server.uploads import PHOTOS
from sessions.clock import ManualClock
from sessions.detainees import Detainee
from sessions.facilities import UnexpectedFacePolicy
from sessions.ids import new_id
from sessions.officers import Role
from sessions.services import VisitorInput
from tests.integration.test_live_media import Http, Signal, join, officer_socket
from tests.support.domain import SHANGHAI
from tests.support.faces import card_frame, head, live_frame, paste
from tests.support.media import Client, silence
from tests.support.testdata import face

START = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)


class PictureTrack(VideoStreamTrack):
    """A fake camera showing one composed picture at 30 fps (aiortc encodes it)."""

    def __init__(self, picture: Image) -> None:
        super().__init__()
        self.picture = picture

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self.picture, format="rgb24")
        frame.pts = pts
        frame.time_base = fractions.Fraction(time_base.numerator, time_base.denominator)
        return frame


@dataclass
class BidenVisit:
    http: Http
    visit_token: str
    visit_code: str


@pytest.fixture
async def biden_visit(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[BidenVisit]:
    """The demo facility, plus a fresh application whose visitor's ID photo is
    biden_1.jpg, submitted, accepted, approved and scheduled through the service."""
    clock = ManualClock(START)
    settings = Settings.from_sources(
        {"data_dir": str(tmp_path), "ice_hosts": "127.0.0.1", "workers": "1"}, environ={}
    )
    demo = await seed(settings, clock)
    http = await aiohttp_client(create_app(settings, clock=clock))
    service = http.app[SERVICE]
    kiosk = await service.kiosk_by_token(demo.kiosk_token)
    async with service.uow() as uow:
        officers = {
            role: await uow.officers.get_by_username(name)
            for name, role in (
                ("shouli", Role.INTAKE),
                ("shenhe", Role.REVIEWER),
                ("zhiban", Role.DUTY),
            )
        }
    today = START.date()
    detainee = await service.register_detainee(
        Detainee(new_id(), kiosk.facility_id, "王强", admitted_on=today - timedelta(days=60)),
        actor="demo",
    )
    ref = await http.app[PHOTOS].save(kiosk.facility_id, face("biden_1.jpg").read_bytes())
    application = await service.submit_application(
        facility_id=kiosk.facility_id,
        detainee_name=detainee.name,
        visitors=[
            VisitorInput(
                name="李建国",
                id_number=demo_id_number("331102", date(1962, 11, 20), "131"),
                phone="13800138001",
                relationship="parent",
                id_photo_ref=ref,
            )
        ],
        reason="distance_hardship",
    )
    assert all(o is not None for o in officers.values())
    await service.accept(officers[Role.INTAKE].id, application.id)  # type: ignore[union-attr]
    await service.approve(officers[Role.REVIEWER].id, application.id)  # type: ignore[union-attr]
    starts_at = demo.starts_at + timedelta(hours=2)
    scheduled = await service.schedule(
        officers[Role.DUTY].id,  # type: ignore[union-attr]
        application.id,
        kiosk.id,
        starts_at,
    )
    clock.set(starts_at - timedelta(minutes=5))  # the link opens 15 minutes before
    yield BidenVisit(http, scheduled.secrets.token, scheduled.secrets.code)


async def ledger(http: Http, visit_id: str) -> list[Any]:
    async with http.app[SERVICE].uow() as uow:
        return [r for r in await uow.audit.records() if r.subject_id == visit_id]


async def connect(visit: BidenVisit) -> tuple[Signal, Signal, str]:
    relative = await join(
        visit.http, {"role": "relative", "token": visit.visit_token, "code": visit.visit_code}
    )
    found, _ = await visit.http.app[SERVICE].visit_for_token(visit.visit_token)
    officer = await officer_socket(visit.http, found.id)
    return relative, officer, found.id


async def test_the_visit_goes_live_by_itself_once_card_and_face_match(
    biden_visit: BidenVisit,
) -> None:
    relative_signal, officer_signal, visit_id = await connect(biden_visit)
    assert (await officer_signal.request("start"))["type"] == "ack"
    camera = Client(
        "relative", send=[silence(), PictureTrack(card_frame("biden_2.jpg", "biden_1.jpg"))]
    )
    try:
        await camera.connect(relative_signal, "relative")
        live = None
        while live is None:
            frame = await relative_signal.until("state", within=25)
            relative_signal.events.remove(frame)
            if frame["state"] == "live":
                live = frame
        steps = [f["step"] for f in relative_signal.events if f["type"] == "identity"]
        assert "passed" in steps and steps[-1] == "passed"
        assert {"hold_still", "matched"} & set(steps)
        records = await ledger(biden_visit.http, visit_id)
        checked = [r for r in records if r.event == "visit.identity_checked"]
        assert len(checked) == 1 and checked[0].data["passed"] is True
        assert checked[0].actor == "system:face_gate"
        (person,) = checked[0].data["persons"]
        assert person["passed"] is True and len(person["frames"]) >= 3
        assert all(f["live"] < 0.6 and f["card"] < 0.6 for f in person["frames"])
        went_live = [r for r in records if r.event == "visit.went_live"]
        assert [r.actor for r in went_live] == ["system:face_gate"]
        pool = biden_visit.http.app[RECOGNITION].pool
        assert pool is not None and pool.stats().processed >= 3
    finally:
        await camera.close()


def biden_with_a_stranger() -> Image:
    """Biden talking, and a second face (Obama) that entered the picture."""
    frame = live_frame("biden_2.jpg", face_px=140, left=30)
    stranger = head("obama_1.jpg", 130, width_faces=1.8, height_faces=2.6)
    paste(frame, stranger, 360, max(0, (480 - stranger.shape[0]) // 2))
    return np.ascontiguousarray(frame)


async def test_a_stranger_on_the_relative_side_alerts_the_officer_with_a_snapshot(
    biden_visit: BidenVisit,
) -> None:
    relative_signal, officer_signal, visit_id = await connect(biden_visit)
    assert (await officer_signal.request("start"))["type"] == "ack"
    assert (await officer_signal.request("admit"))["type"] == "ack"  # the officer's override
    camera = Client("relative", send=[silence(), PictureTrack(biden_with_a_stranger())])
    try:
        await camera.connect(relative_signal, "relative")
        alert = await officer_signal.until("alert", within=25)
        assert alert["side"] == "relative" and alert["auto_cut"] is False
        assert alert["snapshot"].startswith("data:image/jpeg;base64,")
        assert 1000 < len(alert["snapshot"]) < 60_000
        assert alert["distance"] >= 0.6 and alert["votes"] >= 3
        assert alert["box"][0] >= 300  # the stranger on the right, not Biden
        assert not [f for f in relative_signal.events if f["type"] == "alert"]
        records = await ledger(biden_visit.http, visit_id)
        (recorded,) = [r for r in records if r.event == "visit.face_alert"]
        assert recorded.actor == "system:face_watch" and "snapshot" not in recorded.data
        assert recorded.data["distances"]["visitor-1"] >= 0.6
        room = biden_visit.http.app[LIVE].rooms[visit_id]
        assert room.visit is not None and room.visit.state.value == "live"
    finally:
        await camera.close()


async def test_the_auto_cut_policy_ends_the_visit_when_a_stranger_appears(
    biden_visit: BidenVisit,
) -> None:
    service = biden_visit.http.app[SERVICE]
    async with service.uow() as uow:
        admin = await uow.officers.get_by_username("admin")
        assert admin is not None
        facility = await uow.facilities.get(admin.facility_id)
        assert facility is not None
    await service.update_facility_rules(
        admin.id, facility.rules.with_changes(unexpected_face_policy=UnexpectedFacePolicy.AUTO_CUT)
    )
    relative_signal, officer_signal, visit_id = await connect(biden_visit)
    assert (await officer_signal.request("start"))["type"] == "ack"
    assert (await officer_signal.request("admit"))["type"] == "ack"
    camera = Client("relative", send=[silence(), PictureTrack(biden_with_a_stranger())])
    try:
        await camera.connect(relative_signal, "relative")
        alert = await officer_signal.until("alert", within=25)
        assert alert["auto_cut"] is True
        ended = await relative_signal.until("ended", within=10)
        assert ended["reason"] == "identity_failed" and ended["message"] == "身份核验未通过"
        records = await ledger(biden_visit.http, visit_id)
        (end,) = [r for r in records if r.event == "visit.ended"]
        assert end.actor == "system:face_watch"
        assert visit_id not in biden_visit.http.app[RECOGNITION].sessions
    finally:
        await camera.close()
