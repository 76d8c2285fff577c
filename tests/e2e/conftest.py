"""End-to-end fixtures: the real app on a real port with a seeded SQLite file,
and Debian's Chromium driven by Playwright (never a Playwright browser download)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, async_playwright

from server.app import create_app
from server.demo import DemoSeed, seed
from server.settings import Settings
from tests.support.fake_media import kiosk_camera, relative_camera, write_tone
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("Debian's chromium is not installed: run ./run setup")


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    settings: Settings
    demo: DemoSeed
    app: web.Application


@asynccontextmanager
async def serving(
    tmp_path: Path, *, id_photo: bytes | None = None, **options: str
) -> AsyncIterator[LiveServer]:
    """The app on a free port of 127.0.0.1 with the demo seeded; ``options`` are settings;
    ``id_photo``: the demo visitor's ID-card photo (enrolled: the face gate runs)."""
    port = free_port()
    settings = Settings.from_sources(
        {"data_dir": str(tmp_path / "data"), "port": str(port), **options}, environ={}
    )
    demo = await seed(settings, id_photo=id_photo)
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield LiveServer(settings.base_url(), settings, demo, app)
    finally:
        await runner.cleanup()


@pytest.fixture
async def live_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with serving(tmp_path) as server:
        yield server


@pytest.fixture
async def media_live_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """``live_server`` whose media plane offers 127.0.0.1 as its only ICE host address."""
    async with serving(tmp_path, ice_hosts="127.0.0.1") as server:
        yield server


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_FLAGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- Live visits: fake camera and microphone, one Chromium per side ---------------------------


@dataclass(frozen=True)
class FakeMedia:
    relative_video: Path
    kiosk_video: Path
    audio: Path


@pytest.fixture(scope="session")
def fake_media(tmp_path_factory: pytest.TempPathFactory) -> FakeMedia:
    """Y4M cameras (the relative: the Hamilton clip; the kiosk: obama_1.jpg) and a 440 Hz WAV."""
    folder = tmp_path_factory.mktemp("fake-media")
    return FakeMedia(relative_camera(folder), kiosk_camera(folder), write_tone(folder / "tone.wav"))


def media_flags(video: Path, audio: Path) -> list[str]:
    """Chromium flags for WebRTC against a server on 127.0.0.1 with a file as camera and mic."""
    return [
        *CHROMIUM_FLAGS,
        "--allow-loopback-in-peer-connection",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
        f"--use-file-for-fake-audio-capture={audio}",
    ]


@dataclass(frozen=True)
class MediaBrowsers:
    """One Chromium per camera file (a process takes one): the relative's and the kiosk's."""

    relative: Browser
    kiosk: Browser


@pytest.fixture
async def media_browsers(fake_media: FakeMedia) -> AsyncIterator[MediaBrowsers]:
    async with async_playwright() as playwright:
        launched: list[Browser] = []
        try:
            for video in (fake_media.relative_video, fake_media.kiosk_video):
                launched.append(
                    await playwright.chromium.launch(
                        executable_path=chromium_path(),
                        args=media_flags(video, fake_media.audio),
                    )
                )
            yield MediaBrowsers(*launched)
        finally:
            for opened in launched:
                await opened.close()
