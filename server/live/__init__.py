"""Live-visit signalling over WebSocket (``/ws/visit``): who may join a visit,
its state and countdown on every screen, chat, the officer's actions, and the
hand-off of SDP to the media plane. The protocol is in ``docs/protocol.md``.

``setup(app)`` registers the route, the registry and its sweeper; the database
context passes ``publisher(app)`` to the service so committed events reach the
sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from sessions.events import Event
from sessions.services import Publisher

from ..keys import CLOCK, SERVICE
from . import handlers as handlers  # noqa: F401  (declares the commands)
from .connection import PATH, visit_socket
from .ports import MEDIA_FACTORY, MediaFactory, MediaSession, provide_media
from .rooms import LIVE, LiveRegistry, LiveTiming

__all__ = [
    "LIVE",
    "LiveRegistry",
    "LiveTiming",
    "MediaFactory",
    "MediaSession",
    "provide_media",
    "publisher",
    "setup",
]


def setup(app: web.Application) -> None:
    app[LIVE] = LiveRegistry(app[CLOCK])
    app.router.add_get(PATH, visit_socket, name="visit_socket")
    app.cleanup_ctx.append(_running)
    app.on_shutdown.append(_going_away)


def publisher(app: web.Application) -> Publisher:
    """The service's publish hook: committed events to the live registry, if any."""

    async def publish(events: Sequence[Event]) -> None:
        registry = app.get(LIVE)
        if registry is not None:
            await registry.publish(events)

    return publish


async def _running(app: web.Application) -> AsyncIterator[None]:
    registry = app[LIVE]
    box = app.get(MEDIA_FACTORY)
    registry.bind(app[SERVICE], box.factory if box is not None else None)
    sweeper = asyncio.create_task(registry.run_sweeper(), name="live-sweeper")
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await registry.close_all()


async def _going_away(app: web.Application) -> None:
    await app[LIVE].going_away()
