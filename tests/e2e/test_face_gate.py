"""End to end through the face gate in Debian's Chromium: the relative's fake camera is a
``.y4m`` composed from the test material (the video clip's lead holding an ID card of
himself, then really turning his head right and back); the visitor's ID photo is
``lin_manuel_miranda.png``. The officer only presses 开机联线: the relative's page shows
the gate's steps and the visit goes live by itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright, expect

from server.faces import RECOGNITION
from tests.e2e.conftest import LiveServer, chromium_path, media_flags, serving
from tests.e2e.test_live_visit import LIVE, officer_starts, relative_joins
from tests.support import faces
from tests.support.fake_media import write_frames_y4m, write_tone
from tests.support.gate import FixedChoice
from tests.support.testdata import face


@pytest.fixture
async def gate_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    photo = face(faces.CLIP_LEAD).read_bytes()
    async with serving(tmp_path, id_photo=photo, ice_hosts="127.0.0.1") as server:
        server.app[RECOGNITION].rng = FixedChoice("right")  # the camera file turns right
        yield server


@pytest.fixture
async def gate_browser(tmp_path: Path) -> AsyncIterator[Browser]:
    video = write_frames_y4m(tmp_path / "gate.y4m", faces.gate_sequence())
    audio = write_tone(tmp_path / "tone.wav")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), args=media_flags(video, audio)
        )
        try:
            yield browser
        finally:
            await browser.close()


async def test_the_relative_passes_the_gate_and_the_visit_goes_live_by_itself(
    gate_server: LiveServer, gate_browser: Browser, browser: Browser, artifacts: Path
) -> None:
    server, demo = gate_server, gate_server.demo
    logs: list[str] = []
    relative = await relative_joins(gate_browser, server, logs)
    service = server.app[RECOGNITION].registry.service
    found, _ = await service.visit_for_token(demo.visit_token)
    officer = await officer_starts(browser, server, found.id, logs)

    # The gate's instructions reach the phone: the card first, then the head turn.
    page_text = relative.locator("[data-visit-room]")
    await expect(page_text).to_contain_text("身份证", timeout=20_000)
    await relative.screenshot(path=str(artifacts / "1-relative-card.png"), full_page=True)
    await expect(page_text).to_contain_text("向右转头", timeout=30_000)
    await relative.screenshot(path=str(artifacts / "2-relative-turn.png"), full_page=True)
    # ...and the visit goes live without the officer admitting anyone.
    await expect(relative.locator("[data-state]")).to_have_text(LIVE, timeout=45_000)
    await expect(officer.locator("span[data-state]")).to_have_text(LIVE)
    await relative.screenshot(path=str(artifacts / "3-relative-live.png"), full_page=True)
    await officer.screenshot(path=str(artifacts / "4-officer-live.png"), full_page=True)
    async with service.uow() as uow:
        records = [r for r in await uow.audit.records() if r.subject_id == found.id]
    (checked,) = [r for r in records if r.event == "visit.identity_checked"]
    assert checked.data["passed"] is True and checked.actor == "system:face_gate"
    persons: Any = checked.data["persons"]
    assert persons[0]["liveness"][-1]["direction"] == "right"
    assert not [line for line in logs if "pageerror" in line], logs
