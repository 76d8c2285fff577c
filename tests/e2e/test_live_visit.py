"""A live video visit in headless Chromium: the relative's phone page and the kiosk's page
join the same visit, each with a fake camera (Y4M) and microphone (WAV); the duty officer
starts the connection, admits, watches both sides, warns and cuts. Every picture goes
through the server's media plane (ICE host 127.0.0.1), and each page's own
RTCPeerConnection must decode the other side's video (``framesDecoded`` in getStats).
Screenshots of the three pages, live and after the cut, land in test-artifacts/e2e/."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Browser, Page, ViewportSize, expect

from server.demo import DEMO_PASSWORD
from sessions.visits import EndReason, VisitState
from tests.e2e.conftest import LiveServer, MediaBrowsers

PHONE: ViewportSize = {"width": 390, "height": 844}
KIOSK: ViewportSize = {"width": 1280, "height": 800}
FRAMES = 30
#: How long the three pages may take to decode FRAMES frames once the visit is live.
DECODE_SECONDS = 30.0
LIVE = VisitState.LIVE.label_zh
ENDED = VisitState.ENDED.label_zh
CUT_MESSAGE = EndReason.OFFICER_CUT.label_zh  # 民警已中止会见

#: framesDecoded of every inbound video stream of the page's peer connection, in m-line
#: order; None when the page has none (not yet, or no more).
VIDEO_FRAMES_JS = """async () => {
  const pc = window.__visit && window.__visit.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  const rows = [];
  stats.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") rows.push([s.mid || "", s.framesDecoded || 0]);
  });
  rows.sort((a, b) => a[0].localeCompare(b[0], undefined, { numeric: true }));
  return rows.map((r) => r[1]);
}"""

#: Audio packets received per inbound audio stream of the page's peer connection.
AUDIO_PACKETS_JS = """async () => {
  const stats = await window.__visit.pc.getStats();
  const rows = [];
  stats.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") rows.push(s.packetsReceived || 0);
  });
  return rows;
}"""

#: Frames the room's remote <video> has shown: it stops counting once the tracks end.
SHOWN_FRAMES_JS = """() => {
  const video = document.querySelector("[data-remote]");
  return video.getVideoPlaybackQuality().totalVideoFrames;
}"""

#: The kinds of the tracks the room's remote <video> plays (the other side's picture and voice).
REMOTE_KINDS_JS = """() => {
  const stream = document.querySelector("[data-remote]").srcObject;
  return stream ? stream.getTracks().map((t) => t.kind).sort() : [];
}"""


async def video_frames(page: Page) -> list[int] | None:
    result: Any = await page.evaluate(VIDEO_FRAMES_JS)
    return None if result is None else [int(n) for n in result]


async def wait_for_frames(pages: dict[str, tuple[Page, int]], logs: list[str]) -> None:
    """Until each page decodes more than FRAMES frames on each of the remote videos it expects."""
    deadline = time.monotonic() + DECODE_SECONDS
    last: dict[str, list[int] | None] = {}
    while True:
        for name, (page, _) in pages.items():
            last[name] = await video_frames(page)
        if all(
            frames is not None and len(frames) == pages[name][1] and min(frames) > FRAMES
            for name, frames in last.items()
        ):
            return
        if time.monotonic() > deadline:
            errors = {
                name: await page.inner_text("[data-error]") for name, (page, _) in pages.items()
            }
            raise AssertionError(
                f"video not decoded in time: {last}; page errors: {errors}; console: {logs}"
            )
        await asyncio.sleep(0.25)


async def officer_login(browser: Browser, server: LiveServer, username: str) -> Page:
    page = await browser.new_page(viewport=KIOSK, locale="zh-CN")
    await page.goto(f"{server.base_url}/console/login")
    await page.fill('input[name="username"]', username)
    await page.fill('input[name="password"]', DEMO_PASSWORD)
    await page.click('form[action="/console/login"] button[type="submit"]')
    await expect(page).to_have_url(f"{server.base_url}/console/")
    return page


def collect_console(page: Page, name: str, sink: list[str]) -> None:
    page.on("console", lambda m: sink.append(f"{name} {m.type}: {m.text}"))
    page.on("pageerror", lambda e: sink.append(f"{name} pageerror: {e}"))


async def relative_joins(browser: Browser, server: LiveServer, logs: list[str]) -> Page:
    """The relative opens the SMS link on a phone and types the 会见码: the room page."""
    relative = await browser.new_page(viewport=PHONE, locale="zh-CN")
    collect_console(relative, "relative", logs)
    await relative.goto(f"{server.base_url}/v/{server.demo.visit_token}")
    await relative.fill("#code", server.demo.visit_code)
    await relative.click('form button[type="submit"]')
    await expect(relative.locator("[data-visit-room]")).to_be_visible()
    return relative


async def kiosk_enters(browser: Browser, server: LiveServer, logs: list[str]) -> tuple[Page, str]:
    """The kiosk's day view lists the visit; 进入会见 opens its room. Returns the visit id."""
    kiosk = await browser.new_page(viewport=KIOSK, locale="zh-CN")
    collect_console(kiosk, "kiosk", logs)
    await kiosk.goto(f"{server.base_url}/kiosk?token={server.demo.kiosk_token}")
    enter = kiosk.get_by_role("link", name="进入会见")
    href = await enter.get_attribute("href")
    assert href is not None
    await enter.click()
    await expect(kiosk.locator('[data-visit-room][data-role="kiosk"]')).to_be_visible()
    return kiosk, urlsplit(href).path.rsplit("/", 1)[-1]


async def officer_starts(
    browser: Browser, server: LiveServer, visit_id: str, logs: list[str]
) -> Page:
    """The duty officer opens the visit's watch page (confirm() dialogs accepted) and
    presses 开机联线."""
    officer = await officer_login(browser, server, "zhiban")
    collect_console(officer, "officer", logs)
    officer.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await officer.goto(f"{server.base_url}/console/visits/{visit_id}")
    start = officer.locator('button[data-action="start"]')
    await expect(start).to_be_enabled()
    await start.click()
    return officer


async def test_relative_and_kiosk_see_each_other_and_the_officer_cuts(
    media_live_server: LiveServer, media_browsers: MediaBrowsers, artifacts: Path
) -> None:
    server = media_live_server
    logs: list[str] = []

    # 1. The relative joins on a phone; 2. the kiosk enters; 3. the duty officer (same
    # browser as the kiosk, own context) starts and admits.
    relative = await relative_joins(media_browsers.relative, server, logs)
    kiosk, visit_id = await kiosk_enters(media_browsers.kiosk, server, logs)
    officer = await officer_starts(media_browsers.kiosk, server, visit_id, logs)
    admit = officer.locator('button[data-action="admit"]')
    await expect(admit).to_be_enabled()
    await admit.click()
    for page in (relative, kiosk, officer):
        await expect(page.locator("[data-state]")).to_have_text(LIVE)

    # 4. Each side decodes the other's video; the officer decodes both.
    await wait_for_frames(
        {"relative": (relative, 1), "kiosk": (kiosk, 1), "officer": (officer, 2)}, logs
    )
    # ...and hears it: audio arrives, and the room's remote <video> plays picture and voice.
    for page, streams in ((relative, 1), (kiosk, 1), (officer, 2)):
        audio = await page.evaluate(AUDIO_PACKETS_JS)
        assert len(audio) == streams and min(audio) > 0, audio
    for page in (relative, kiosk):
        assert await page.evaluate(REMOTE_KINDS_JS) == ["audio", "video"]
    await relative.screenshot(path=str(artifacts / "1-relative-live.png"), full_page=True)
    await kiosk.screenshot(path=str(artifacts / "2-kiosk-live.png"), full_page=True)
    await officer.screenshot(path=str(artifacts / "3-officer-live.png"), full_page=True)

    # 5. A chat line from the relative reaches the kiosk and the officer, as text.
    line = "妈妈身体很好，<b>放心</b>"
    await relative.fill("[data-chat-input]", line)
    await relative.click("[data-chat-form] button")
    for page in (relative, kiosk, officer):
        await expect(page.locator("[data-chat-list] li").last).to_have_text(f"家属：{line}")
        text = page.locator("[data-chat-list] li span").last
        assert await text.evaluate("(span) => span.children.length") == 0, "chat rendered as HTML"

    # 6. The officer's warning shows on both screens.
    warning = "请勿谈论案情"
    await officer.fill("[data-warn-text]", warning)
    await officer.click('button[data-action="warn"]')
    for page in (relative, kiosk):
        await expect(page.locator("[data-warning]")).to_have_text(warning)

    # 7. The officer cuts (confirm() accepted): both sides show why, and the media stops.
    # Chromium's getStats() on a closed connection reports nothing, so after the cut the
    # relative's remote <video> is the witness: it counted frames before, and stops.
    playing = await relative.evaluate(SHOWN_FRAMES_JS)
    await asyncio.sleep(0.5)
    assert await relative.evaluate(SHOWN_FRAMES_JS) > playing, "the remote video is not playing"
    await relative.evaluate("() => { window.__keptPc = window.__visit.pc; }")
    await officer.fill("[data-cut-reason]", "谈论案情，经提醒不改")
    await officer.click('button[data-action="cut"]')
    for page in (relative, kiosk):
        await expect(page.locator("[data-ended]")).to_have_text(
            f"{CUT_MESSAGE}：谈论案情，经提醒不改"
        )
    for page in (relative, kiosk, officer):
        await expect(page.locator("[data-ended]")).to_contain_text(CUT_MESSAGE)
        await expect(page.locator("[data-state]")).to_have_text(ENDED)
    assert await video_frames(relative) is None, "the relative's page still has a connection"
    assert await relative.evaluate("() => window.__keptPc.connectionState") == "closed"
    shown = await relative.evaluate(SHOWN_FRAMES_JS)
    await asyncio.sleep(1.0)
    assert await relative.evaluate(SHOWN_FRAMES_JS) == shown, "video still plays after the cut"
    await relative.screenshot(path=str(artifacts / "4-relative-ended.png"), full_page=True)
    await kiosk.screenshot(path=str(artifacts / "5-kiosk-ended.png"), full_page=True)
    await officer.screenshot(path=str(artifacts / "6-officer-ended.png"), full_page=True)
