"""Plugging the media plane into the app: the ICE host addresses from settings
and a ``VisitMedia`` per live visit for the signalling layer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from aiohttp import web
from aiortc import RTCIceServer

from sessions.visits import Visit

from ..ice import ice_servers_for
from ..keys import CLOCK, SETTINGS
from ..live.ports import provide_media
from ..settings import IceServer
from . import hooks
from .peers import VisitMedia


def rtc_ice_servers(servers: tuple[IceServer, ...], now: datetime) -> list[RTCIceServer]:
    return [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in ice_servers_for(servers, "server", now)
    ]


def setup(app: web.Application) -> None:
    def factory(visit: Visit) -> VisitMedia:
        now = app[CLOCK].now()
        return VisitMedia(visit.id, ice_servers=rtc_ice_servers(app[SETTINGS].ice_servers, now))

    provide_media(app, factory)

    async def host_addresses(app: web.Application) -> AsyncIterator[None]:
        addresses = app[SETTINGS].ice_host_addresses
        hooks.set_host_addresses(list(addresses) if addresses else None)
        yield
        hooks.set_host_addresses(None)

    app.cleanup_ctx.append(host_addresses)
