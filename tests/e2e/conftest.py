"""End-to-end fixtures: the real app on a real port with a seeded SQLite file,
and Debian's Chromium driven by Playwright (never a Playwright browser download)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, async_playwright

from server.app import create_app
from server.demo import DemoSeed, seed
from server.settings import Settings
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


@pytest.fixture
async def live_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    port = free_port()
    settings = Settings.from_sources(
        {"data_dir": str(tmp_path / "data"), "port": str(port)}, environ={}
    )
    demo = await seed(settings)
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
