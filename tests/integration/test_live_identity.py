"""Face checks on a live visit through the real app: a real aiortc relative sends a
camera composed from the test material; the server taps its video, the recognition
worker (one process, the real models) judges it, and the visit goes live by itself
once the ID card and the live face match the visitor's enrolment and the face turned
on request (the video clip's lead really turning his head); a printed photo does not
get through; a face nobody approved raises an alert, with a snapshot, on the
officer's socket."""

from __future__ import annotations

import asyncio
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

from recognition.enrolment import encoding_to_bytes, enrol
from recognition.gate import GateRules
from recognition.liveness import TurnRules
from recognition.models import Image
from server.app import create_app
from server.demo import demo_id_number, seed
from server.faces import RECOGNITION
from server.keys import SERVICE
from server.live import LIVE
from server.settings import Settings
from server.uploads import PHOTOS
from sessions.clock import ManualClock
from sessions.detainees import Detainee
from sessions.facilities import UnexpectedFacePolicy
from sessions.ids import new_id
from sessions.officers import Role
from sessions.services import VisitorInput
from tests.integration.test_live_media import Http, Signal, join, officer_socket
from tests.support import faces
from tests.support.domain import SHANGHAI
from tests.support.faces import background, head, live_frame, paste
from tests.support.gate import FixedChoice
from tests.support.media import Client, silence
from tests.support.testdata import face

START = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)


class SequenceTrack(VideoStreamTrack):
    """A fake camera playing composed frames at 30 fps, looping (aiortc encodes them)."""

    def __init__(self, frames: list[Image]) -> None:
        super().__init__()
        self.frames = frames
        self.index = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        picture = self.frames[self.index % len(self.frames)]
        self.index += 1
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts = pts
        frame.time_base = fractions.Fraction(time_base.numerator, time_base.denominator)
        return frame


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
    kiosk_token: str


@pytest.fixture
async def biden_visit(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[BidenVisit]:
    async for visit in scheduled_visit(tmp_path, aiohttp_client, "biden_1.jpg"):
        yield visit


@pytest.fixture
async def lead_visit(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[BidenVisit]:
    """The visitor's ID photo shows the video clip's lead; the gate asks him to turn right."""
    async for visit in scheduled_visit(tmp_path, aiohttp_client, faces.CLIP_LEAD):
        visit.http.app[RECOGNITION].rng = FixedChoice("right")
        yield visit


async def scheduled_visit(
    tmp_path: Path, aiohttp_client: Any, id_photo: str, **options: str
) -> AsyncIterator[BidenVisit]:
    """The demo facility, plus a fresh application whose visitor's ID photo is
    ``id_photo``, submitted, accepted, approved and scheduled through the service."""
    clock = ManualClock(START)
    settings = Settings.from_sources(
        {"data_dir": str(tmp_path), "ice_hosts": "127.0.0.1", "workers": "1", **options},
        environ={},
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
        Detainee(
            new_id(),
            kiosk.facility_id,
            "王强",
            admitted_on=today - timedelta(days=60),
            # The facility's photo of the detainee: obama_1 (the kiosk side is watched).
            face_encoding=encoding_to_bytes(enrol(face("obama_1.jpg").read_bytes()).encoding),
        ),
        actor="demo",
    )
    ref = await http.app[PHOTOS].save(kiosk.facility_id, face(id_photo).read_bytes())
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
    yield BidenVisit(http, scheduled.secrets.token, scheduled.secrets.code, demo.kiosk_token)


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


async def identity_steps(signal: Signal) -> list[str]:
    return [f["step"] for f in signal.events if f["type"] == "identity"]


async def steps_until(signal: Signal, last: str, within: float = 40) -> list[str]:
    """Read the relative's identity frames until one with step ``last``."""
    deadline = asyncio.get_running_loop().time() + within
    steps: list[str] = []
    while not steps or steps[-1] != last:
        left = deadline - asyncio.get_running_loop().time()
        frame = await signal.until("identity", within=max(0.1, left))
        signal.events.remove(frame)
        steps.append(frame["step"])
    return steps


async def test_the_visit_goes_live_by_itself_once_card_face_and_head_turn_pass(
    lead_visit: BidenVisit,
) -> None:
    relative_signal, officer_signal, visit_id = await connect(lead_visit)
    assert (await officer_signal.request("start"))["type"] == "ack"
    camera = Client("relative", send=[silence(), SequenceTrack(faces.gate_sequence())])
    try:
        await camera.connect(relative_signal, "relative")
        while True:
            frame = await relative_signal.until("state", within=40)
            relative_signal.events.remove(frame)
            if frame["state"] == "live":
                break
        steps = await identity_steps(relative_signal)
        assert steps[-1] == "passed"
        assert {"hold_still", "turn_right", "turn_back"} <= set(steps), steps
        turn = next(f for f in relative_signal.events if f.get("step") == "turn_right")
        assert turn["challenge"] == "right" and "向右转头" in turn["message"]
        gate = await officer_signal.until("gate", within=10)
        assert gate["passed"] is True and gate["snapshot"].startswith("data:image/jpeg;base64,")
        assert not [f for f in relative_signal.events if f["type"] == "gate"]
        records = await ledger(lead_visit.http, visit_id)
        (checked,) = [r for r in records if r.event == "visit.identity_checked"]
        assert checked.data["passed"] is True and checked.actor == "system:face_gate"
        (person,) = checked.data["persons"]
        assert person["passed"] is True and len(person["frames"]) >= 3
        assert all(f["live"] < 0.6 and f["card"] < 0.6 for f in person["frames"])
        (attempt,) = person["liveness"]
        assert attempt["passed"] and attempt["direction"] == "right"
        assert attempt["peak"] >= TurnRules().turn
        ref = checked.data["snapshot_ref"]
        assert ref and gate["snapshot_ref"] == ref
        went_live = [r for r in records if r.event == "visit.went_live"]
        assert [r.actor for r in went_live] == ["system:face_gate"]
        pool = lead_visit.http.app[RECOGNITION].pool
        assert pool is not None and pool.stats().processed >= 10
    finally:
        await camera.close()


async def test_a_printed_photo_with_the_right_card_does_not_pass_the_gate(
    lead_visit: BidenVisit,
) -> None:
    """The card and the face match, but the face never turns (a photo): the challenge
    times out, the tries run out, the officer is asked to decide, and nothing goes live."""
    lead_visit.http.app[RECOGNITION].gate_rules = GateRules(
        attempts=2, liveness=TurnRules(timeout_s=3)
    )
    relative_signal, officer_signal, visit_id = await connect(lead_visit)
    assert (await officer_signal.request("start"))["type"] == "ack"
    front = faces.clip_frames()[faces.CLIP_FRONT]
    photo = [faces.with_card(front, faces.CLIP_LEAD)] * 60 + [front] * 30
    camera = Client("relative", send=[silence(), SequenceTrack(photo)])
    try:
        await camera.connect(relative_signal, "relative")
        steps = await steps_until(relative_signal, "failed")
        assert "turn_right" in steps and "passed" not in steps and "matched" not in steps
        gate = await officer_signal.until("gate", within=10)
        assert gate["passed"] is False
        assert gate["message"] == "身份核验未通过，请决定准许或结束会见"
        records = await ledger(lead_visit.http, visit_id)
        (checked,) = [r for r in records if r.event == "visit.identity_checked"]
        assert checked.data["passed"] is False
        attempts = checked.data["persons"][0]["liveness"]
        assert len(attempts) == 2 and not any(a["passed"] for a in attempts)
        room = lead_visit.http.app[LIVE].rooms[visit_id]
        assert room.visit is not None and room.visit.state.value == "identity_check"
    finally:
        await camera.close()


async def test_someone_else_s_card_does_not_pass(lead_visit: BidenVisit) -> None:
    relative_signal, officer_signal, visit_id = await connect(lead_visit)
    assert (await officer_signal.request("start"))["type"] == "ack"
    camera = Client("relative", send=[silence(), SequenceTrack(faces.gate_sequence("obama_1.jpg"))])
    try:
        await camera.connect(relative_signal, "relative")
        for _ in range(60):
            frame = await relative_signal.until("identity", within=20)
            relative_signal.events.remove(frame)
            assert frame["step"] not in ("turn_right", "passed", "matched")
            if frame["step"] == "mismatch":
                break
        else:
            raise AssertionError("no mismatch reported")
        assert "人脸与身份证或登记信息不符" in frame["message"]
        room = lead_visit.http.app[LIVE].rooms[visit_id]
        assert room.visit is not None and room.visit.state.value == "identity_check"
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
    admitted = await officer_signal.request("admit", reason="民警人工核验身份证件与本人一致")
    assert admitted["type"] == "ack"  # the officer's override
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
    admitted = await officer_signal.request("admit", reason="民警人工核验身份证件与本人一致")
    assert admitted["type"] == "ack"
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


def detainee_with_a_stranger() -> Image:
    """The detainee (obama_2: enrolled from obama_1) at the kiosk, and someone else."""
    frame = live_frame("obama_2.jpg", face_px=140, left=30)
    stranger = head(faces.CLIP_LEAD, 130, width_faces=1.8, height_faces=2.6)
    paste(frame, stranger, 360, max(0, (480 - stranger.shape[0]) // 2))
    return np.ascontiguousarray(frame)


async def test_kiosk_side_stranger_and_an_absent_visitor_are_reported_to_the_officer(
    biden_visit: BidenVisit,
) -> None:
    """Both sides watched during the visit: a stranger beside the detainee alerts (side
    kiosk); the visitor out of view for the timeout is reported, and again when back."""
    biden_visit.http.app[RECOGNITION].presence_timeout = 2.0
    relative_signal, officer_signal, visit_id = await connect(biden_visit)
    kiosk_signal = await join(
        biden_visit.http,
        {"role": "kiosk", "device_token": biden_visit.kiosk_token, "visit_id": visit_id},
    )
    assert (await officer_signal.request("start"))["type"] == "ack"
    admitted = await officer_signal.request("admit", reason="民警人工核验身份证件与本人一致")
    assert admitted["type"] == "ack"
    present_then_gone = [live_frame("biden_2.jpg")] * 90 + [background()] * 180
    relative = Client("relative", send=[silence(), SequenceTrack(present_then_gone)])
    kiosk = Client("kiosk", send=[silence(), PictureTrack(detainee_with_a_stranger())])
    try:
        await relative.connect(relative_signal, "relative")
        await kiosk.connect(kiosk_signal, "kiosk")
        alert = await officer_signal.until("alert", within=30)
        assert alert["side"] == "kiosk" and alert["box"][0] >= 300
        assert alert["distances"]["detainee"] >= 0.6
        absent = await officer_signal.until("reverify", within=30)
        officer_signal.events.remove(absent)
        assert absent["side"] == "relative" and absent["person"] == "visitor-1"
        assert absent["status"] == "absent" and absent["name"] == "李建国"
        assert absent["message"] == "核准的会见人已离开画面或无法核验"
        back = await officer_signal.until("reverify", within=30)
        assert back["status"] == "back"
        assert not [f for f in relative_signal.events if f["type"] in ("alert", "reverify")]
        records = await ledger(biden_visit.http, visit_id)
        statuses = [r.data["status"] for r in records if r.event == "visit.presence_changed"]
        assert statuses[:2] == ["absent", "back"]
        (recorded,) = [r for r in records if r.event == "visit.face_alert"]
        assert recorded.data["side"] == "kiosk" and recorded.data["snapshot_ref"]
    finally:
        await relative.close()
        await kiosk.close()
