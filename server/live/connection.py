"""One WebSocket of the live visit: checks before the upgrade, the hello
handshake, then a loop that turns each text frame into a declared command.

Order of checks, so that nothing reaches the visit unauthorised:
the Origin (403 before upgrading), the connection limit (503), then within
``auth_timeout`` a ``hello`` with the protocol version and the participant's
credentials, checked by the service; only then is the socket subscribed to the
visit, and only subscribed sockets may send commands (an SDP offer included).
A bad frame gets an error frame and the socket stays open; a refused hello,
a wrong version or no hello in time close it. Frames out go through the
socket's bounded ``Outbox``; this module never writes to the socket itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from sessions.errors import DomainError, Language
from sessions.officers import Officer, Role
from sessions.visits import VisitState

from ..auth import current_officer
from ..i18n import pick_language
from ..ice import ice_servers_for
from ..keys import SETTINGS
from .handlers import CommandContext
from .protocol import (
    CLOSE_AUTH_TIMEOUT,
    CLOSE_REFUSED,
    CLOSE_VERSION,
    COMMANDS,
    HELLO_SCHEMA,
    MAX_FRAME_BYTES,
    MAX_ID_CHARS,
    PROTOCOL_VERSION,
    Frame,
    error_frame,
    protocol_error,
    reply,
    validate,
)
from .rooms import LIVE, MAX_CONNECTIONS, LiveRegistry, LiveVisit
from .writer import Outbox

log = logging.getLogger(__name__)

PATH = "/ws/visit"
#: At most this many frames from one client per window, or it gets ``rate_limited``.
RATE_LIMIT = 40
RATE_WINDOW = 10.0
OFFICER_ROLES = frozenset({Role.DUTY, Role.LEADER})


def origin_allowed(request: web.Request) -> bool:
    """A browser always sends Origin on a WebSocket: it must be this server (as the
    request names it, or its public URL). Non-browser clients send none."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc:
        return False
    allowed = {request.host.lower()}
    public_url = request.app[SETTINGS].public_url
    if public_url:
        allowed.add(urlsplit(public_url).netloc.lower())
    return parts.netloc.lower() in allowed


async def visit_socket(request: web.Request) -> web.StreamResponse:
    if not origin_allowed(request):
        raise web.HTTPForbidden(text="origin not allowed")
    registry = request.app[LIVE]
    if len(registry.connections) >= MAX_CONNECTIONS:
        raise web.HTTPServiceUnavailable(text="too many connections")
    ws = web.WebSocketResponse(heartbeat=registry.timing.heartbeat, max_msg_size=MAX_FRAME_BYTES)
    await ws.prepare(request)
    connection = Connection(request, ws, registry)
    await connection.serve()
    return ws


class Connection:
    def __init__(
        self, request: web.Request, ws: web.WebSocketResponse, registry: LiveRegistry
    ) -> None:
        self.request = request
        self.ws = ws
        self.registry = registry
        self.lang: Language = pick_language(request, request.app[SETTINGS].language)
        self.outbox = Outbox(
            ws.send_str,
            lambda code: ws.close(code=code),
            capacity=registry.timing.queue_capacity,
            name=f"ws-{id(self):x}",
        )
        #: Set by a successful hello.
        self.role = ""
        self.key = ""
        self.room: LiveVisit | None = None
        self.officer: Officer | None = None
        self._recent: deque[float] = deque(maxlen=RATE_LIMIT)
        #: A handler sets this to close the socket once its reply is out (``leave``).
        self.finish_after_reply: int | None = None

    # -- what the room calls --------------------------------------------------------
    def send(self, frame: Frame) -> bool:
        return self.outbox.put(frame)

    def finish(self, code: int) -> None:
        self.outbox.finish(code)

    @property
    def participant_id(self) -> str:
        return self.key

    # -- the socket's life -------------------------------------------------------------
    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.registry.timing.auth_timeout
        self.registry.connected(self)
        self.outbox.start()
        try:
            while not self.ws.closed:
                waiting_for_hello = self.room is None and not self.outbox.closed
                timeout = max(0.0, deadline - loop.time()) if waiting_for_hello else None
                try:
                    message = await self.ws.receive(timeout=timeout)
                except TimeoutError:
                    self._refuse(None, protocol_error("auth_timeout"), CLOSE_AUTH_TIMEOUT)
                    continue
                if message.type is WSMsgType.TEXT:
                    if not self.outbox.closed:
                        await self._on_text(message.data)
                elif message.type is WSMsgType.BINARY:
                    self._error(None, protocol_error("bad_message"))
                else:  # CLOSE, CLOSING, CLOSED, ERROR
                    break
        finally:
            if self.room is not None:
                await self.registry.leave(self.room, self)
            await self.outbox.stop()
            if not self.ws.closed:
                await self.ws.close()
            self.registry.disconnected(self)

    def _error(self, msg_id: Any, error: DomainError) -> None:
        self.send(error_frame(msg_id, error, self.lang))

    def _refuse(self, msg_id: Any, error: DomainError, code: int) -> None:
        self._error(msg_id, error)
        self.finish(code)

    def _throttled(self) -> bool:
        now = time.monotonic()
        if len(self._recent) == RATE_LIMIT and now - self._recent[0] < RATE_WINDOW:
            return True
        self._recent.append(now)
        return False

    async def _on_text(self, text: str) -> None:
        try:
            data = json.loads(text)
        except ValueError:
            self._error(None, protocol_error("bad_json"))
            return
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            self._error(None, protocol_error("bad_message"))
            return
        msg_id = data.get("id")
        if not (
            msg_id is None
            or (isinstance(msg_id, int) and not isinstance(msg_id, bool))
            or (isinstance(msg_id, str) and len(msg_id) <= MAX_ID_CHARS)
        ):
            msg_id = None
        if self._throttled():
            self._error(msg_id, protocol_error("rate_limited"))
            return
        kind = data["type"]
        try:
            if kind == "hello":
                if self.room is not None:
                    raise protocol_error("already_joined")
                await self._hello(msg_id, data)
                return
            if self.room is None:
                raise protocol_error("hello_required")
            command = COMMANDS.get(kind)
            if command is None:
                raise protocol_error("unknown_type", detail=kind[:MAX_ID_CHARS])
            if self.role not in command.roles:
                raise protocol_error("role_forbidden")
            validate(command.schema, data)
            answer = await command.handler(CommandContext(self, self.registry, self.room), data)
            if answer is not None:
                self.send({"id": msg_id, **answer})
            if self.finish_after_reply is not None:
                self.finish(self.finish_after_reply)
        except DomainError as error:
            self._error(msg_id, error)
        except Exception:
            log.exception("live: command %r failed", kind[:MAX_ID_CHARS])
            self._error(msg_id, protocol_error("internal_error"))

    # -- the handshake -----------------------------------------------------------------
    async def _hello(self, msg_id: Any, data: dict[str, Any]) -> None:
        validate(HELLO_SCHEMA, data)
        if data.get("lang") in ("zh", "en"):
            self.lang = data["lang"]
        if data["version"] != PROTOCOL_VERSION:
            self._refuse(msg_id, protocol_error("version_unsupported"), CLOSE_VERSION)
            return
        try:
            visit_id, key, officer = await self._authorise(data)
            room = await self.registry.room_for(visit_id)
        except DomainError as error:
            self._refuse(msg_id, error, CLOSE_REFUSED)
            return
        # -- no await from here: subscribe, then snapshot --
        self.role, self.key, self.officer = data["role"], key, officer
        try:
            snapshot = room.attach(self)
        except DomainError as error:
            self.role = self.key = ""
            self._refuse(msg_id, error, CLOSE_REFUSED)
            await self.registry.release(room)
            return
        self.room = room
        settings = self.request.app[SETTINGS]
        self.send(
            reply(
                msg_id,
                "welcome",
                version=PROTOCOL_VERSION,
                role=self.role,
                participant_id=self.key,
                ice_servers=ice_servers_for(
                    settings.ice_servers, f"{self.key}@{room.visit_id}", self.registry.clock.now()
                ),
                visit=snapshot,
            )
        )

    async def _authorise(self, data: dict[str, Any]) -> tuple[str, str, Officer | None]:
        """Who this is, as the service decides: (visit id, participant key, officer)."""
        service = self.registry.service
        role = data["role"]
        if role == "relative":
            token, code = data.get("token"), data.get("code")
            if not token:
                raise protocol_error("invalid_field", field="token", detail="token")
            if not code:
                raise protocol_error("invalid_field", field="code", detail="code")
            visit = await service.join_visit(token, code)
            return visit.id, "relative", None
        visit_id = data.get("visit_id")
        if not visit_id:
            raise protocol_error("invalid_field", field="visit_id", detail="visit_id")
        if role == "kiosk":
            device_token = data.get("device_token")
            if not device_token:
                raise protocol_error("invalid_field", field="device_token", detail="device_token")
            kiosk = await service.kiosk_by_token(device_token)
            visit = await service.get_visit(visit_id)
            if visit.kiosk_id != kiosk.id:
                raise protocol_error("wrong_kiosk")
            if visit.state is VisitState.ENDED:
                raise protocol_error("visit_ended")
            return visit.id, "kiosk", None
        officer = await current_officer(self.request)
        if officer is None:
            raise protocol_error("login_required")
        if not officer.roles & OFFICER_ROLES:
            raise protocol_error("officer_role")
        visit = await service.get_visit(visit_id)
        officer.require_facility(visit.facility_id)
        if visit.state is VisitState.ENDED:
            raise protocol_error("visit_ended")
        return visit.id, f"officer:{officer.id}", officer
