"""The face gate as people see it, in headless Chromium against the real server: the
relative's phone page guides the ID-card check and the head turn, the kiosk says the
relative is being checked, and the duty officer's watch page shows the gate's progress,
its decision with the snapshot and distances, the alerts and the presence notices, then
admits with a reason (which lands in the ledger).

The frames come through the visit's real room (``room.broadcast``, exactly as
``server.faces`` sends them), not from the recogniser: the face checks are switched off
for this app (``app[LIVE].watcher = None``) so that what the pages show is exactly what
the test sent. Screenshots land in test-artifacts/e2e/."""

from __future__ import annotations

import asyncio
import base64
import io
import re
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw
from playwright.async_api import Page, expect

from server.keys import SERVICE
from server.live import LIVE
from server.live.protocol import event_frame
from server.live.rooms import LiveVisit
from server.snapshots import SNAPSHOTS
from sessions.visits import VisitState
from tests.e2e.conftest import LiveServer, MediaBrowsers
from tests.e2e.test_live_visit import kiosk_enters, officer_starts, relative_joins

CHECKING = VisitState.IDENTITY_CHECK.label_zh  # 身份核验中
LIVE_LABEL = VisitState.LIVE.label_zh
RELATIVE_AND_OFFICERS = frozenset({"relative", "officer"})
OFFICERS = frozenset({"officer"})
REASON = "民警人工核验：身份证件与本人一致（证件照片较旧）"
#: Whether an <img> has decoded (a CSP refusal or a 403 leaves naturalWidth at 0).
LOADED_JS = "(img) => img.complete && img.naturalWidth > 0"


def snapshot_jpeg() -> bytes:
    """A stand-in snapshot: grey frame, a red face box (as ``server.faces`` draws it)."""
    image = Image.new("RGB", (320, 240), (90, 90, 90))
    ImageDraw.Draw(image).rectangle((180, 60, 260, 150), outline=(255, 40, 40), width=3)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=70)
    return out.getvalue()


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def send(room: LiveVisit, type_: str, roles: frozenset[str], **fields: Any) -> None:
    room.broadcast(lambda lang: event_frame(type_, **fields), roles=roles)


def identity(room: LiveVisit, step: str, message: str, **fields: Any) -> None:
    frame: dict[str, Any] = {
        "person": "visitor-1",
        "person_name": "李秀英",
        "votes": 0,
        "needed": 3,
        "passed_people": 0,
        "people": 1,
        "attempts_left": 3,
        "challenge": None,
        "progress": None,
    }
    frame.update(fields)
    send(room, "identity", RELATIVE_AND_OFFICERS, step=step, message=message, **frame)


async def wait_for_room(server: LiveServer, visit_id: str) -> LiveVisit:
    for _ in range(100):
        room = server.app[LIVE].rooms.get(visit_id)
        if (
            room is not None
            and room.visit is not None
            and room.visit.state.value == "identity_check"
        ):
            return room
        await asyncio.sleep(0.05)
    raise AssertionError("the visit's room never reached the identity check")


async def test_the_gate_guides_the_relative_and_informs_the_officer_who_admits_with_a_reason(
    media_live_server: LiveServer, media_browsers: MediaBrowsers, artifacts: Path
) -> None:
    server = media_live_server
    server.app[LIVE].watcher = None  # the frames below are the only face-check frames
    logs: list[str] = []

    relative = await relative_joins(media_browsers.relative, server, logs)
    await expect(relative.locator("[data-gate]")).to_be_hidden()  # not before the check
    kiosk, visit_id = await kiosk_enters(media_browsers.kiosk, server, logs)
    officer = await officer_starts(media_browsers.kiosk, server, visit_id, logs)
    for page in (relative, kiosk, officer):
        await expect(page.locator("[data-state]")).to_have_text(CHECKING)
    room = await wait_for_room(server, visit_id)

    # 1. Before any verdict: the guide over the preview, the card frame beside the face.
    guide = relative.locator("[data-gate-guide]")
    await expect(relative.locator("[data-gate]")).to_be_visible()
    await expect(relative.locator("[data-visit-room]")).to_have_class(re.compile(r"\bchecking\b"))
    await expect(guide).to_be_visible()
    await expect(guide.locator(".guide-card")).to_be_visible()
    await expect(guide.locator(".guide-hint")).to_have_text("请将身份证人像面举在脸旁")
    await expect(kiosk.locator("[data-kiosk-gate]")).to_have_text("家属正在进行身份核验，请稍候")
    await expect(kiosk.locator("[data-visit-room]")).not_to_have_class(re.compile(r"\bchecking\b"))
    assert await relative.locator("[data-gate-message]").get_attribute("aria-live") == "polite"

    # 2. The card is seen and matching: the vote dots fill; the officer sees the same.
    identity(room, "hold_still", "已检测到身份证，请保持不动", votes=2)
    await expect(relative.locator("[data-gate-message]")).to_have_text("已检测到身份证，请保持不动")
    await expect(relative.locator("[data-gate-votes-text]")).to_have_text("已确认 2/3")
    await expect(relative.locator("[data-gate-dots] .dot.done")).to_have_count(2)
    await expect(relative.locator("[data-gate-person]")).to_have_text("正在核验：李秀英")
    row = officer.locator('[data-identity-people] tr[data-person="visitor-1"]')
    await expect(row.locator("[data-progress]")).to_have_text("已确认 2/3 次")
    await expect(row.locator("[data-step]")).to_have_text("比对中")
    await relative.screenshot(path=str(artifacts / "1-relative-card.png"), full_page=True)

    # 3. The head turn: the card frame goes, an arrow shows the way and how far along.
    turn = "请放下身份证，缓慢向左转头，再转回正面"
    identity(room, "turn_left", turn, votes=3, challenge="left", progress=0.4)
    await expect(relative.locator("[data-gate-message]")).to_have_text(turn)
    await expect(guide.locator("[data-guide-arrow]")).to_be_visible()
    await expect(guide.locator("[data-guide-arrow]")).to_have_text("←")
    await expect(guide.locator(".guide-card")).to_be_hidden()
    await expect(relative.locator("[data-gate-votes]")).to_be_hidden()
    assert await relative.locator("[data-turn-progress]").evaluate("(p) => p.value") == 0.4
    await expect(row.locator("[data-progress]")).to_have_text("转头 40%")
    await relative.screenshot(path=str(artifacts / "2-relative-turn-left.png"), full_page=True)
    identity(room, "turn_right", "请放下身份证，缓慢向右转头，再转回正面", challenge="right")
    await expect(guide.locator("[data-guide-arrow]")).to_have_text("→")

    # 4. A mismatch: the attempts left show from now on.
    mismatch = "人脸与身份证或登记信息不符，请本人手持本人身份证重试"
    identity(room, "mismatch", mismatch, attempts_left=2)
    await expect(relative.locator("[data-gate-message]")).to_have_text(mismatch)
    await expect(relative.locator("[data-gate-attempts]")).to_have_text("还可以再试 2 次")
    await expect(guide.locator("[data-guide-arrow]")).to_be_hidden()

    # 5. The gate gives up: no more guide, the relative is told to wait for the officer.
    identity(room, "failed", "身份核验未通过，请等待民警处理", attempts_left=0)
    await expect(relative.locator("[data-gate-message]")).to_have_text(
        "身份核验未通过，请等待民警处理"
    )
    await expect(guide).to_be_hidden()
    await expect(relative.locator("[data-gate-wait]")).to_be_visible()
    await expect(relative.locator("[data-gate-attempts]")).to_be_hidden()
    await expect(officer.locator("[data-identity-summary]")).to_contain_text("自动核验未通过")
    await relative.screenshot(path=str(artifacts / "3-relative-failed.png"), full_page=True)
    await kiosk.screenshot(path=str(artifacts / "4-kiosk-checking.png"), full_page=True)

    # 6. The gate's decision, for the officers only: snapshot and distances.
    jpeg = snapshot_jpeg()
    send(
        room,
        "gate",
        OFFICERS,
        passed=False,
        message="身份核验未通过，请决定准许或结束会见",
        persons=[
            {
                "person": "visitor-1",
                "name": "李秀英",
                "passed": False,
                "live": [0.41, 0.62, 0.58],
                "card": [0.45, 0.66, 0.49],
                "liveness": {
                    "direction": "left",
                    "baseline": 0.02,
                    "peak": 0.09,
                    "samples": 6,
                    "passed": False,
                },
            }
        ],
        snapshot=data_url(jpeg),
        snapshot_ref=None,
    )
    decision = officer.locator("[data-gate-decision]")
    await expect(decision).to_be_visible()
    await expect(decision.locator("[data-gate-title]")).to_have_text(
        "身份核验未通过，请决定准许或结束会见"
    )
    await expect(decision).to_contain_text("现场人脸距离 0.410 / 0.620 / 0.580")
    await expect(decision).to_contain_text("证件人像距离 0.450 / 0.660 / 0.490")
    await expect(decision).to_contain_text("转头向左未通过")
    assert await decision.locator("[data-gate-snapshot]").evaluate(LOADED_JS)

    # 7. Unexpected faces: newest first, with the snapshot, and the auto-cut marked.
    alert: dict[str, Any] = {
        "side": "relative",
        "message": "画面中出现未经核准的人员",
        "box": [180, 60, 260, 150],
        "distance": 0.7312,
        "distances": {"visitor-1": 0.7312},
        "votes": 3,
        "window": 4,
        "snapshot": data_url(jpeg),
        "snapshot_ref": None,
    }
    send(room, "alert", OFFICERS, at="2026-03-02T09:50:01+08:00", auto_cut=False, **alert)
    send(room, "alert", OFFICERS, at="2026-03-02T09:50:09+08:00", auto_cut=True, **alert)
    alerts = officer.locator("[data-alerts] article")
    await expect(alerts).to_have_count(2)
    await expect(alerts.first).to_contain_text("已自动中止")
    await expect(alerts.nth(1)).not_to_contain_text("已自动中止")
    await expect(alerts.first).to_contain_text("09:50:09 · 家属端")  # the facility's time
    await expect(alerts.first).to_contain_text("李秀英 0.731")
    assert await alerts.first.locator("img").evaluate(LOADED_JS)
    assert await officer.locator("[data-alerts]").get_attribute("role") == "alert"
    await expect(relative.locator("text=未经核准")).to_have_count(0)  # officers only

    # 8. A presence notice.
    send(
        room,
        "reverify",
        OFFICERS,
        side="relative",
        person="visitor-1",
        name="李秀英",
        status="absent",
        seconds=12.0,
        message="核准的会见人已离开画面或无法核验",
        snapshot=data_url(jpeg),
        snapshot_ref=None,
        at="2026-03-02T09:50:20+08:00",
    )
    notice = officer.locator("[data-presence-list] li").first
    await expect(notice).to_contain_text("李秀英：核准的会见人已离开画面或无法核验")
    await expect(notice).to_contain_text("约 12 秒")
    await officer.screenshot(path=str(artifacts / "5-officer-gate-failed.png"), full_page=True)

    # 9. The officer admits: never without a reason; with one, everyone goes live.
    reason = officer.locator("[data-admit-reason]")
    await expect(reason).to_have_value("民警人工核验身份证件与本人一致")
    await reason.fill("")
    await officer.click('button[data-action="admit"]')
    await expect(officer.locator("[data-error]")).to_have_text("请填写人工核验的理由")
    await expect(officer.locator("[data-state]")).to_have_text(CHECKING)
    await reason.fill(REASON)
    await officer.click('button[data-action="admit"]')
    for page in (relative, kiosk, officer):
        await expect(page.locator("[data-state]")).to_have_text(LIVE_LABEL)
    await expect(relative.locator("[data-gate]")).to_be_hidden()
    await expect(relative.locator("[data-gate-guide]")).to_be_hidden()
    await expect(kiosk.locator("[data-kiosk-gate]")).to_be_hidden()
    await expect(officer.locator('button[data-action="deny"]')).to_be_disabled()
    async with server.app[SERVICE].uow() as uow:
        records = await uow.audit.records()
    (checked,) = [r for r in records if r.event == "visit.identity_checked"]
    assert checked.data["reason"] == REASON and checked.data["override"] is True
    await relative.screenshot(path=str(artifacts / "6-relative-live.png"), full_page=True)

    # 10. The ledger's face checks, with a stored snapshot, on the reloaded watch page.
    ref = server.app[SNAPSHOTS].save(checked.facility_id or "", visit_id, jpeg)
    await server.app[SERVICE].raise_face_alert(
        visit_id,
        "relative",
        box=[180, 60, 260, 150],
        distance=0.7312,
        distances={"visitor-1": 0.7312},
        votes=3,
        window=4,
        policy="alert_only",
        snapshot_ref=ref,
    )
    await officer.reload()
    history = officer.locator("[data-face-history] li")
    await expect(history).to_have_count(2)
    await expect(history.first).to_contain_text("民警人工核验通过，开始会见")
    await expect(history.first).to_contain_text(REASON)
    await expect(history.nth(1)).to_contain_text("家属端出现未经核准的人员")
    stored = history.nth(1).locator("img")
    await expect(stored).to_have_attribute(
        "src", f"/console/visits/{visit_id}/snapshots/{ref.split('/')[1]}"
    )
    await stored.scroll_into_view_if_needed()
    await expect_loaded(stored_page=officer, selector="[data-face-history] li img")
    await officer.screenshot(path=str(artifacts / "7-officer-history.png"), full_page=True)

    refused = [line for line in logs if "Content Security Policy" in line or "pageerror" in line]
    assert not refused, refused


async def expect_loaded(*, stored_page: Page, selector: str) -> None:
    """Until the image has decoded (it loads lazily, over the console route)."""
    for _ in range(100):
        if await stored_page.locator(selector).evaluate(LOADED_JS):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{selector} did not load")
