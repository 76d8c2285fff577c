"""The commands of the live-visit protocol, each declared with the roles that
may send it and the schema of its fields (see ``protocol.command``).

A handler runs only for an authorised socket whose role is allowed and whose
message matched the schema. Rules are the service's: a handler calls it and
lets the committed events travel back to every socket through the registry;
what it returns is the reply to the sender (``None``: the reply is an event
frame, as for ``cut``, answered by ``ended``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sessions.errors import PermissionDenied
from sessions.events import officer_actor
from sessions.officers import Officer, Role
from sessions.services import CHAT_MAX_CHARS, WARNING_MAX_CHARS
from sessions.visits import VisitKind, VisitState

from .ports import MediaRole
from .protocol import (
    CLOSE_NORMAL,
    MAX_SDP,
    SIDES,
    Field,
    Frame,
    command,
    protocol_error,
)
from .rooms import LiveRegistry, LiveVisit

if TYPE_CHECKING:
    from .connection import Connection

#: States in which SDP is accepted: the officer has started the connection.
MEDIA_STATES = frozenset({VisitState.CONNECTING, VisitState.IDENTITY_CHECK, VisitState.LIVE})
CUT_NOTE_MAX = 500
MEDIA_ROLES: dict[str, MediaRole] = {
    "relative": "relative",
    "kiosk": "kiosk",
    "officer": "officer-watch",
}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandContext:
    connection: Connection
    registry: LiveRegistry
    room: LiveVisit

    @property
    def visit_id(self) -> str:
        return self.room.visit_id

    @property
    def officer(self) -> Officer:
        officer = self.connection.officer
        assert officer is not None  # the role check let only officers through
        return officer

    async def duty_officer(self) -> Officer:
        """The officer reloaded now (the handshake may be hours old) and on duty here:
        checked before an action that cannot wait for the service to refuse it."""
        async with self.registry.service.uow() as uow:
            officer = await uow.officers.get(self.officer.id)
        if officer is None or not officer.active:
            raise PermissionDenied("officer_inactive", "民警账号已停用", "The account is disabled")
        officer.require(Role.DUTY)
        assert self.room.visit is not None
        officer.require_facility(self.room.visit.facility_id)
        return officer


def ack(**fields: Any) -> Frame:
    return {"type": "ack", **fields}


@command("ping", roles={"relative", "kiosk", "officer"})
async def ping(ctx: CommandContext, msg: Mapping[str, Any]) -> Frame | None:
    return {"type": "pong"}


@command(
    "offer",
    roles={"relative", "kiosk", "officer"},
    schema={"sdp": Field(str, max_len=MAX_SDP)},
)
async def offer(ctx: CommandContext, msg: Mapping[str, Any]) -> Frame | None:
    factory = ctx.registry.media_factory
    if factory is None:
        raise protocol_error("media_unavailable")
    visit = ctx.room.visit
    assert visit is not None
    if visit.state not in MEDIA_STATES:
        raise protocol_error("offer_state")
    if ctx.connection.role == "officer" and visit.kind is VisitKind.LAWYER:
        raise protocol_error("not_monitored")
    media = ctx.room.media_session(factory)
    try:
        answer = await media.accept_offer(
            ctx.connection.participant_id, MEDIA_ROLES[ctx.connection.role], msg["sdp"]
        )
    except Exception as exc:  # the media plane's MediaError, or an SDP aiortc cannot parse
        log.info("visit %s: offer from %s refused: %s", ctx.visit_id, ctx.connection.role, exc)
        raise protocol_error("offer_rejected") from None
    if ctx.room.closed:
        raise protocol_error("visit_ended")
    return {"type": "answer", "sdp": answer}


@command("chat", roles={"relative", "kiosk"}, schema={"text": Field(str, max_len=CHAT_MAX_CHARS)})
async def chat(ctx: CommandContext, msg: Mapping[str, Any]) -> Frame | None:
    event = await ctx.registry.service.chat(ctx.visit_id, ctx.connection.role, msg["text"])
    ctx.room.chat(event)
    return ack()


@command("start", roles={"officer"})
async def start(ctx: CommandContext, msg: Mapping[str, Any]) -> Frame | None:
    """开机联线: connecting, then at once the identity check (ID card on screen)."""
    service = ctx.registry.service
    await service.start_connection(ctx.officer.id, ctx.visit_id)
    await service.advance_visit(
        ctx.visit_id, VisitState.IDENTITY_CHECK, officer_actor(ctx.officer.id)
    )
    return ack()


@command("admit", roles={"officer"})
async def admit(ctx: CommandContext, msg: Mapping[str, Any]) -> Frame | None:
    """The officer checked the ID card on screen: the visit goes live (and its clock starts)."""
    officer = await ctx.duty_officer()
    await ctx.registry.service.advance_visit(
        ctx.visit_id, VisitState.LIVE, officer_actor(officer.id)
    )
    return ack()


@command("warn", roles={"officer"}, schema={"text": Field(str, max_len=WARNING_MAX_CHARS)})
async def warn(ctx: CommandContext, msg: Mapping[str, Any]) -> Frame | None:
    await ctx.registry.service.warn(ctx.officer.id, ctx.visit_id, msg["text"])
    return ack()


@command(
    "mute",
    roles={"officer"},
    schema={"side": Field(str, choices=SIDES), "muted": Field(bool)},
)
async def mute(ctx: CommandContext, msg: Mapping[str, Any]) -> Frame | None:
    await ctx.registry.service.set_muted(ctx.officer.id, ctx.visit_id, msg["side"], msg["muted"])
    return ack()


@command("cut", roles={"officer"}, schema={"reason": Field(str, max_len=CUT_NOTE_MAX)})
async def cut(ctx: CommandContext, msg: Mapping[str, Any]) -> Frame | None:
    """One click: media stops first, then the service ends the visit and revokes
    its credentials; every socket (this one too) gets ``ended``."""
    officer = await ctx.duty_officer()
    ctx.room.stop_media()
    visit = await ctx.registry.service.cut_visit(officer.id, ctx.visit_id, msg["reason"])
    await ctx.registry.apply(visit)  # idempotent: the published event usually did it
    return None


@command("leave", roles={"relative", "kiosk"})
async def leave(ctx: CommandContext, msg: Mapping[str, Any]) -> Frame | None:
    """Closes this socket only: a visit ends by the officer or the time limit."""
    ctx.connection.finish_after_reply = CLOSE_NORMAL
    return ack()
