"""Live visits in this process: who is connected to each, and the fan-out of
committed events to their sockets.

``LiveRegistry`` (one per app, ``app[LIVE]``) receives every event the service
layer commits (``publish``), keeps a ``LiveVisit`` per visit that has sockets,
and runs the sweeper that ends visits whose time is up even when nobody is
connected. A ``LiveVisit`` owns everything of one visit in this process: its
participants by role, the muted flags, the media session and the countdown
task; ``close`` cancels and awaits the task and closes the media.

Nothing here decides a rule: the service does, and this module only tells the
sockets what was decided. Broadcasting never awaits a socket (each has its own
bounded outbox), so one slow client cannot hold up a visit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, cast

from aiohttp import web

from sessions.clock import Clock
from sessions.errors import DomainError, Language
from sessions.events import Event, EventName, SubjectType
from sessions.services import VisitGateService
from sessions.visits import Visit, VisitKind, VisitState

from ..tasks import log_failure as _log_failure
from .ports import MediaFactory, MediaSession, MediaSide
from .protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_REPLACED,
    Frame,
    end_reason_text,
    event_frame,
    protocol_error,
    remaining_seconds,
    state_label,
)

log = logging.getLogger(__name__)

#: Events after which a visit's state is reloaded and sent out.
STATE_EVENTS = frozenset(
    {
        EventName.VISIT_LOBBY_ENTERED,
        EventName.VISIT_CONNECTING,
        EventName.VISIT_IDENTITY_CHECK_STARTED,
        EventName.VISIT_WENT_LIVE,
        EventName.VISIT_ENDED,
    }
)
SIDE_NAMES: tuple[MediaSide, MediaSide] = ("relative", "kiosk")
#: Officers watching one visit at once.
MAX_OFFICERS_PER_VISIT = 8
#: Sockets of this process, authenticated or not.
MAX_CONNECTIONS = 2000


@dataclass
class LiveTiming:
    """Every period of the live layer in one place (tests shorten them)."""

    #: Seconds a new socket has to send its hello.
    auth_timeout: float = 10.0
    #: aiohttp's WebSocket ping period; a missing pong closes the socket.
    heartbeat: float = 15.0
    #: Seconds between two runs of the sweeper (time limits).
    sweep_interval: float = 1.0
    #: Seconds between two countdown checks of a live visit (time warnings).
    countdown_interval: float = 1.0
    #: Seconds between two ``tick`` frames while live (the issue asks for ≤ 10).
    tick_every: float = 5.0
    #: Frames an outbox holds before its client counts as too slow.
    queue_capacity: int = 256


class Peer(Protocol):
    """A participant's socket as a room sees it (``connection.Connection``)."""

    key: str
    role: str
    lang: Language

    def send(self, frame: Frame) -> bool: ...

    def finish(self, code: int) -> None: ...


class RoomWatcher(Protocol):
    """Told about a room's media and state (the face checks, ``server.faces``)."""

    def room_changed(self, room: LiveVisit) -> None:
        """The room got its media session or a newer visit state; must not block."""
        ...

    async def room_closing(self, room: LiveVisit) -> None:
        """The room is closing: stop everything started for it (before its media closes)."""
        ...


class LiveVisit:
    def __init__(self, visit_id: str, registry: LiveRegistry) -> None:
        self.visit_id = visit_id
        self._registry = registry
        #: The newest version of the visit seen here (None until first loaded).
        self.visit: Visit | None = None
        self.peers: dict[str, Peer] = {}
        self.muted: dict[str, bool] = {"relative": False, "kiosk": False}
        self.media: MediaSession | None = None
        self.forwarding_stopped = False
        #: Callers between ``room_for`` and ``attach``; the room is not reaped meanwhile.
        self.joining = 0
        self.closed = False
        self._ending = False
        self._countdown: asyncio.Task[None] | None = None
        self._announced: set[timedelta] = set()
        self._last_tick = 0.0

    # -- what the visit looks like ----------------------------------------------
    def observe(self, visit: Visit) -> bool:
        """Keep ``visit`` if it is newer than what we have; True if its state changed.
        Versions only grow, so a reload that finishes late never rolls state back."""
        if self.visit is not None and visit.version <= self.visit.version:
            return False
        before = self.visit.state if self.visit is not None else None
        if self.visit is None:
            # Warnings already due when we first see the visit (a rejoin, a restart)
            # were shown before; the countdown in the snapshot says the rest.
            self._announced = set(visit.warnings_due(self._registry.clock.now()))
        self.visit = visit
        if visit.state is VisitState.LIVE and self._countdown is None and not self.closed:
            self._last_tick = time.monotonic()
            self._countdown = asyncio.create_task(
                self._run_countdown(), name=f"visit-{visit.id}-countdown"
            )
            self._countdown.add_done_callback(_log_failure)
        changed = before is not visit.state
        if changed and not self.closed:
            self._watched()
        return changed

    def _watched(self) -> None:
        watcher = self._registry.watcher
        if watcher is not None:
            try:
                watcher.room_changed(self)
            except Exception:
                log.exception("visit %s: room watcher failed", self.visit_id)

    def snapshot(self, lang: Language) -> dict[str, Any]:
        visit = self.visit
        assert visit is not None
        now = self._registry.clock.now()
        data: dict[str, Any] = {
            "visit_id": visit.id,
            "kind": visit.kind.value,
            "state": visit.state.value,
            "state_label": state_label(visit.state, lang),
            "limit_seconds": int(visit.limit.total_seconds()),
            "remaining_seconds": remaining_seconds(visit, now),
            "muted": dict(self.muted),
            "present": self.presence(),
        }
        if visit.end_reason is not None:
            data["end_reason"] = visit.end_reason.value
            data["end_message"] = end_reason_text(visit.end_reason, lang)
        return data

    def presence(self) -> dict[str, Any]:
        return {
            "relative": "relative" in self.peers,
            "kiosk": "kiosk" in self.peers,
            "officers": sum(1 for p in self.peers.values() if p.role == "officer"),
        }

    # -- who is here ----------------------------------------------------------------
    def attach(self, peer: Peer) -> dict[str, Any]:
        """Subscribe ``peer`` and return its snapshot, with no await in between:
        whatever is broadcast after this call reaches it, and what came before
        is in the snapshot."""
        if self.closed:
            raise protocol_error("visit_ended")
        old = self.peers.get(peer.key)
        if old is None and peer.role == "officer":
            officers = sum(1 for p in self.peers.values() if p.role == "officer")
            if officers >= MAX_OFFICERS_PER_VISIT:
                raise protocol_error("busy")
        self.peers[peer.key] = peer
        if old is not None and old is not peer:
            # The same participant connected again (reload, new network): the
            # newest socket wins and the old one is told why it is closed.
            old.send(event_frame("replaced"))
            old.finish(CLOSE_REPLACED)
        self.broadcast(lambda lang: event_frame("presence", present=self.presence()), skip=peer)
        return self.snapshot(peer.lang)

    def detach(self, peer: Peer) -> bool:
        """Forget ``peer`` unless it was already replaced; True if the room is now idle."""
        if self.peers.get(peer.key) is peer:
            del self.peers[peer.key]
            self.broadcast(lambda lang: event_frame("presence", present=self.presence()))
        return self.idle

    @property
    def idle(self) -> bool:
        return not self.peers and self.joining == 0

    # -- telling everyone ------------------------------------------------------------
    def broadcast(
        self,
        build: Callable[[Language], Frame],
        *,
        skip: Peer | None = None,
        officers: bool = True,
        roles: frozenset[str] | None = None,
    ) -> None:
        """Queue a frame on every socket of the visit (built once per language), or
        only on those whose role is in ``roles``; never awaits."""
        built: dict[Language, Frame] = {}
        for peer in list(self.peers.values()):
            if peer is skip or (not officers and peer.role == "officer"):
                continue
            if roles is not None and peer.role not in roles:
                continue
            if peer.lang not in built:
                built[peer.lang] = build(peer.lang)
            peer.send(built[peer.lang])

    def broadcast_state(self) -> None:
        self.broadcast(lambda lang: event_frame("state", **self.snapshot(lang)))

    def chat(self, event: Event) -> None:
        visit = self.visit
        frame = event_frame(
            "chat",
            sender=event.data.get("sender"),
            text=event.data.get("text"),
            at=event.at.isoformat(),
        )
        # Lawyer meetings are not monitored: officers do not see their chat.
        watched = visit is None or visit.kind is not VisitKind.LAWYER
        self.broadcast(lambda lang: frame, officers=watched)

    def warned(self, event: Event) -> None:
        frame = event_frame("warning", text=event.data.get("text"), at=event.at.isoformat())
        self.broadcast(lambda lang: frame)

    def mute_changed(self, side: MediaSide, muted: bool) -> None:
        self.muted[side] = muted
        if self.media is not None:
            try:
                self.media.set_muted(side, muted)
            except Exception:
                log.exception("visit %s: media could not (un)mute %s", self.visit_id, side)
        self.broadcast(lambda lang: event_frame("muted", side=side, muted=muted))

    # -- media ------------------------------------------------------------------------
    def media_session(self, factory: MediaFactory) -> MediaSession:
        if self.media is None:
            assert self.visit is not None
            self.media = factory(self.visit)
            for side in SIDE_NAMES:
                if self.muted[side]:
                    self.media.set_muted(side, True)
            self._watched()
        return self.media

    def stop_media(self) -> None:
        """Stop relaying at once (before anything else happens on a cut or the limit)."""
        if self.media is not None and not self.forwarding_stopped:
            self.forwarding_stopped = True
            try:
                self.media.stop_forwarding()
            except Exception:
                log.exception("visit %s: stop_forwarding failed", self.visit_id)

    # -- the end ----------------------------------------------------------------------
    async def end(self) -> None:
        """The visit ended: media stops, every socket gets ``ended`` and is closed."""
        if self._ending:
            return
        self._ending = True
        self.stop_media()
        self.broadcast(lambda lang: event_frame("ended", **self._ended(lang)))
        for peer in list(self.peers.values()):
            peer.finish(CLOSE_NORMAL)
        await self.close()

    def _ended(self, lang: Language) -> dict[str, Any]:
        data = self.snapshot(lang)
        visit = self.visit
        assert visit is not None and visit.end_reason is not None
        data["reason"] = visit.end_reason.value
        data["message"] = end_reason_text(visit.end_reason, lang)
        if visit.end_note:
            data["note"] = visit.end_note
        return data

    async def close(self, code: int | None = None) -> None:
        """Cancel and await the countdown, close the media; with ``code``, close the sockets too."""
        self.closed = True
        if code is not None:
            for peer in list(self.peers.values()):
                peer.finish(code)
        watcher = self._registry.watcher
        if watcher is not None:
            try:
                await watcher.room_closing(self)
            except Exception:
                log.exception("visit %s: room watcher failed to stop", self.visit_id)
        task, self._countdown = self._countdown, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        media, self.media = self.media, None
        if media is not None:
            try:
                await media.close()
            except Exception:
                log.exception("visit %s: media close failed", self.visit_id)

    async def _run_countdown(self) -> None:
        """While live: the 5- and 1-minute warnings as soon as they are due, and a
        ``tick`` with the remaining seconds every few seconds."""
        timing = self._registry.timing
        while not self.closed and self.visit is not None and self.visit.state is VisitState.LIVE:
            visit = self.visit
            now = self._registry.clock.now()
            left = remaining_seconds(visit, now)
            for mark in visit.warnings_due(now):
                if mark not in self._announced:
                    self._announced.add(mark)
                    minutes = int(mark.total_seconds() // 60)
                    self.broadcast(_time_warning(minutes, left))
            if time.monotonic() - self._last_tick >= timing.tick_every:
                self._last_tick = time.monotonic()
                self.broadcast(_same(event_frame("tick", remaining_seconds=left)))
            await asyncio.sleep(timing.countdown_interval)


class LiveRegistry:
    """The app's live visits. Created by ``setup`` (no tasks), bound to the service
    when the app starts; ``run_sweeper`` and ``close_all`` are driven by the app."""

    def __init__(self, clock: Clock, timing: LiveTiming | None = None) -> None:
        self.clock = clock
        self.timing = timing or LiveTiming()
        self.rooms: dict[str, LiveVisit] = {}
        self.connections: set[Peer] = set()
        self._all_gone: asyncio.Event | None = None
        self._service: VisitGateService | None = None
        self.media_factory: MediaFactory | None = None
        #: The face checks, when the app has them (``server.faces``).
        self.watcher: RoomWatcher | None = None

    def bind(self, service: VisitGateService, media_factory: MediaFactory | None) -> None:
        self._service = service
        self.media_factory = media_factory

    @property
    def service(self) -> VisitGateService:
        if self._service is None:
            raise RuntimeError("the live registry is used before the app started")
        return self._service

    # -- rooms ----------------------------------------------------------------------
    async def room_for(self, visit_id: str) -> LiveVisit:
        """The visit's room, created first and loaded second, so an event committed
        while loading is not lost. The caller must ``attach`` without awaiting."""
        room = self.rooms.get(visit_id)
        if room is None or room.closed:
            room = self.rooms[visit_id] = LiveVisit(visit_id, self)
        room.joining += 1
        try:
            visit = await self.service.get_visit(visit_id)
            room.observe(visit)
        finally:
            room.joining -= 1
        assert room.visit is not None
        if room.closed or room.visit.state is VisitState.ENDED:
            await self.release(room)
            raise protocol_error("visit_ended")
        return room

    async def release(self, room: LiveVisit) -> None:
        """Close ``room`` if nobody uses it any more."""
        if not room.idle:
            return
        if self.rooms.get(room.visit_id) is room:
            del self.rooms[room.visit_id]
        if not room.closed:
            await room.close()

    async def leave(self, room: LiveVisit, peer: Peer) -> None:
        if room.detach(peer):
            await self.release(room)

    # -- committed events -------------------------------------------------------------
    async def publish(self, events: Sequence[Event]) -> None:
        """The service's publish hook: runs after each commit. It must never raise
        (the change is committed already), so failures are logged."""
        try:
            await self._dispatch(events)
        except Exception:
            log.exception("live: could not hand out %d events", len(events))

    async def _dispatch(self, events: Sequence[Event]) -> None:
        reload: list[str] = []
        for event in events:
            if event.subject_type is not SubjectType.VISIT:
                continue
            room = self.rooms.get(event.subject_id)
            if room is None or room.closed:
                continue
            if event.name is EventName.VISIT_WARNED:
                room.warned(event)
            elif event.name is EventName.VISIT_MUTE_CHANGED:
                side = event.data.get("side")
                if side in SIDE_NAMES:
                    room.mute_changed(cast(MediaSide, side), bool(event.data.get("muted")))
            elif event.name in STATE_EVENTS and event.subject_id not in reload:
                reload.append(event.subject_id)
            # Chat is handed out by the command itself (lawyer text never enters the ledger).
        for visit_id in reload:
            await self.apply(await self.service.get_visit(visit_id))

    async def apply(self, visit: Visit) -> None:
        """Show a newer version of ``visit`` to its sockets (idempotent)."""
        room = self.rooms.get(visit.id)
        if room is None or room.closed or not room.observe(visit):
            return
        if visit.state is VisitState.ENDED:
            await room.end()
            if self.rooms.get(visit.id) is room:
                del self.rooms[visit.id]
        else:
            room.broadcast_state()

    # -- the time limit ----------------------------------------------------------------
    async def sweep_once(self) -> list[Visit]:
        """Stop the media of visits whose time is up, then end them through the
        service (which also catches visits nobody is connected to, e.g. after a
        restart) and tell their sockets."""
        now = self.clock.now()
        for room in list(self.rooms.values()):
            visit = room.visit
            if visit is not None and visit.state is VisitState.LIVE and visit.is_over(now):
                room.stop_media()
            if room.idle and not room.closed:
                await self.release(room)
        async with self.service.uow() as uow:
            facilities = await uow.facilities.list()
        ended: list[Visit] = []
        for facility in facilities:
            try:
                ended += await self.service.end_overdue_visits(facility.id)
            except DomainError as error:  # e.g. an officer's cut won the race
                log.info("sweeper: facility %s: %s", facility.id, error)
        for visit in ended:
            await self.apply(visit)
        return ended

    async def run_sweeper(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception:
                log.exception("live: the sweeper failed a round")
            await asyncio.sleep(self.timing.sweep_interval)

    # -- sockets ----------------------------------------------------------------------
    def connected(self, peer: Peer) -> None:
        self.connections.add(peer)
        self._all_gone = None

    def disconnected(self, peer: Peer) -> None:
        self.connections.discard(peer)
        if not self.connections and self._all_gone is not None:
            self._all_gone.set()

    # -- shutdown ---------------------------------------------------------------------
    async def going_away(self, grace: float = 2.0) -> None:
        """The server stops: every socket is told so (close code 1001) and given
        ``grace`` seconds to close cleanly before the server drops what is left."""
        if not self.connections:
            return
        self._all_gone = asyncio.Event()
        for peer in list(self.connections):
            peer.finish(CLOSE_GOING_AWAY)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_gone.wait(), grace)

    async def close_all(self) -> None:
        rooms, self.rooms = list(self.rooms.values()), {}
        for room in rooms:
            await room.close(CLOSE_GOING_AWAY)


LIVE = web.AppKey("live_registry", LiveRegistry)


def _same(frame: Frame) -> Callable[[Language], Frame]:
    """A frame that reads the same in every language."""
    return lambda lang: frame


def _time_warning(minutes: int, left: int) -> Callable[[Language], Frame]:
    def build(lang: Language) -> Frame:
        message = f"会见剩余{minutes}分钟" if lang == "zh" else f"{minutes} minute(s) left"
        return event_frame(
            "time_warning", minutes_left=minutes, remaining_seconds=left, message=message
        )

    return build
