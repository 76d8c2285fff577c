"""What signalling needs from the media plane (``server/media``), as a Protocol.

The media plane's per-visit ``VisitMedia`` satisfies ``MediaSession``; the
app injects a ``MediaFactory`` under ``MEDIA_FACTORY`` and the live registry
calls it the first time a participant of a visit sends an offer. Without one,
offers are answered with the error ``media_unavailable`` and everything else
(joining, the clock, chat, officer actions) still works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

from aiohttp import web

from sessions.visits import Visit

#: The media plane's names for the participants (an officer only watches).
MediaRole = Literal["relative", "kiosk", "officer-watch"]
MediaSide = Literal["relative", "kiosk"]


class MediaSession(Protocol):
    async def accept_offer(self, participant_id: str, role: MediaRole, sdp: str) -> str:
        """Authorised participant's SDP offer in, the server's SDP answer out."""
        ...

    def stop_forwarding(self) -> float | None:
        """Stop relaying every packet of the visit at once (the cut)."""
        ...

    def set_muted(self, side: MediaSide, muted: bool) -> None:
        """Stop or resume forwarding one side's audio."""
        ...

    async def close(self) -> None:
        """Release the peers and every task of the visit's media."""
        ...


MediaFactory = Callable[[Visit], MediaSession]


class _MediaFactoryBox:
    """AppKey values must be classes for typing; this holds the factory."""

    def __init__(self, factory: MediaFactory) -> None:
        self.factory = factory


MEDIA_FACTORY = web.AppKey("live_media_factory", _MediaFactoryBox)


def provide_media(app: web.Application, factory: MediaFactory) -> None:
    """Called by whoever wires the media plane, before the app starts."""
    app[MEDIA_FACTORY] = _MediaFactoryBox(factory)
