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

from sessions.errors import InvalidTransition, PermissionDenied
from sessions.events import officer_actor
from sessions.officers import Officer, Role
from sessions.services import (
    CHAT_MAX_CHARS,
    IDENTITY_REASON_MAX_CHARS,
    WARNING_MAX_CHARS,
    identity_not_checking,
)
from sessions.visits import EndReason, VisitKind, VisitState

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


@command(
    "admit",
    roles={"officer"},
    schema={"reason": Field(str, max_len=IDENTITY_REASON_MAX_CHARS)},
)
async def admit(ctx: CommandContext, msg: Mapping[str, Any]) -> Frame | None:
    """The officer's override of the face gate: they checked the ID card against
    the person by eye, and say so in ``reason`` (kept in the ledger); the visit
    goes live and its clock starts."""
    officer = await ctx.duty_officer()
    await ctx.registry.service.admit_visit(officer.id, ctx.visit_id, msg["reason"])
    return ack()


@command(
    "deny",
    roles={"officer"},
    schema={"reason": Field(str, required=False, max_len=IDENTITY_REASON_MAX_CHARS)},
)
async def deny(ctx: CommandContext, msg: Mapping[str, Any]) -> Frame | None:
    """核验未通过，结束会见: like ``cut``, the media stops before the service is
    called, and every socket (this one too) gets ``ended`` (``identity_failed``)."""
    officer = await ctx.duty_officer()
    visit = ctx.room.visit
    if visit is None or visit.state is not VisitState.IDENTITY_CHECK:
        raise identity_not_checking()  # checked here too: the media must not stop for nothing
    ctx.room.stop_media()
    service = ctx.registry.service
    try:
        ended = await service.deny_identity(officer.id, ctx.visit_id, msg.get("reason"))
    except InvalidTransition:
        # The gate let the visit go live between our check and the service's, and the
        # media has already stopped: the officer's decision still ends the visit.
        current = await service.get_visit(ctx.visit_id)
        if current.state is not VisitState.ENDED:
            current = await service.end_visit(
                ctx.visit_id,
                EndReason.IDENTITY_FAILED,
                officer_actor(officer.id),
                msg.get("reason"),
            )
        ended = current
    await ctx.registry.apply(ended)  # idempotent: the published event usually did it
    return None


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
