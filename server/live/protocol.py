"""The signalling protocol's vocabulary: its version, frame shapes, error codes
and the registry of declared commands (docs/protocol.md is the prose version).

Every command a client may send is declared once with ``@command``: its type,
the roles allowed to send it and the schema of its fields. The connection
looks the declaration up, checks role and schema, and only then calls the
handler, so a handler never sees a message it was not written for. This module
holds no state about sockets or visits and never awaits anything.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sessions.errors import DomainError, Language
from sessions.visits import EndReason, Visit, VisitState

if TYPE_CHECKING:
    from .handlers import CommandContext

PROTOCOL_VERSION = 1

Role = Literal["relative", "kiosk", "officer"]
ROLES: frozenset[str] = frozenset({"relative", "kiosk", "officer"})
SIDES: frozenset[str] = frozenset({"relative", "kiosk"})

#: Largest SDP offer accepted, in characters.
MAX_SDP = 64 * 1024
#: Largest incoming frame, in bytes (an SDP with JSON escaping fits).
MAX_FRAME_BYTES = 160 * 1024
MAX_ID_CHARS = 64

Frame = dict[str, Any]

# -- close codes (RFC 6455 private range 4000-4999 for ours) -----------------
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_SLOW = 1008  # policy violation: the outgoing queue overflowed
CLOSE_REPLACED = 4000
CLOSE_AUTH_TIMEOUT = 4001
CLOSE_VERSION = 4002
CLOSE_REFUSED = 4003


class ProtocolError(DomainError):
    """A message broke the protocol (not a domain rule); same shape as domain errors."""

    status = 400


#: The protocol's own errors: code -> (zh, en).
MESSAGES: dict[str, tuple[str, str]] = {
    "bad_json": ("消息格式错误（不是有效的JSON）", "The message is not valid JSON"),
    "bad_message": (
        "消息格式错误（应为含 type 字段的JSON对象）",
        "The message must be a JSON object with a type",
    ),
    "unknown_type": ("不支持的消息类型", "Unknown message type"),
    "hello_required": ("请先发送 hello 握手消息", "Send hello first"),
    "already_joined": ("已完成握手，不能重复发送 hello", "hello was already accepted"),
    "version_unsupported": (
        f"协议版本不受支持，请刷新页面（服务器版本 {PROTOCOL_VERSION}）",
        f"Unsupported protocol version; reload the page (server speaks {PROTOCOL_VERSION})",
    ),
    "role_forbidden": ("您的身份不能执行此操作", "Your role may not send this"),
    "invalid_field": ("消息字段无效", "A field of the message is not valid"),
    "login_required": ("请先登录民警工作台", "Sign in to the officer console first"),
    "officer_role": (
        "只有值班岗或所领导可以查看会见",
        "Only the duty officer or a leader may watch a visit",
    ),
    "wrong_kiosk": ("此会见不在本终端进行", "This visit is not on this kiosk"),
    "visit_ended": ("会见已结束", "The visit has ended"),
    "media_unavailable": ("音视频服务暂不可用", "The media service is not available"),
    "offer_rejected": (
        "音视频连接请求无效，请刷新页面重试",
        "The media offer was refused; reload the page and try again",
    ),
    "offer_state": (
        "民警开机联线后才能建立音视频连接",
        "Media can be connected once the officer has started the connection",
    ),
    "not_monitored": ("律师会见不受监听，不能查看", "Lawyer meetings are not monitored"),
    "rate_limited": ("操作过于频繁，请稍后再试", "Too many messages; slow down"),
    "auth_timeout": ("握手超时", "No hello in time"),
    "busy": ("服务器繁忙，请稍后再试", "The server is busy; try again later"),
    "internal_error": ("服务器内部错误，请稍后再试", "Internal error; please try again"),
}


def protocol_error(
    code: str, *, field: str | None = None, detail: str | None = None
) -> ProtocolError:
    zh, en = MESSAGES[code]
    if detail is not None:
        zh, en = f"{zh}：{detail}", f"{en}: {detail}"
    return ProtocolError(code, zh, en, field=field)


# -- frames --------------------------------------------------------------------
def reply(msg_id: Any, type_: str, **fields: Any) -> Frame:
    return {"id": msg_id, "type": type_, **fields}


def error_frame(msg_id: Any, error: DomainError, lang: Language) -> Frame:
    """The one error shape: {id, type: "error", code, message[, field]}."""
    frame: Frame = {
        "id": msg_id,
        "type": "error",
        "code": error.code,
        "message": error.message(lang),
    }
    if error.field is not None:
        frame["field"] = error.field
    return frame


def event_frame(type_: str, **fields: Any) -> Frame:
    """A frame the server pushes unasked (state, chat, warning...): id is null."""
    return {"id": None, "type": type_, **fields}


_END_REASON_EN = {
    EndReason.TIME_LIMIT: "The visit time is up",
    EndReason.OFFICER_CUT: "The officer stopped the visit",
    EndReason.IDENTITY_FAILED: "Identity check failed",
    EndReason.LEFT: "The visitor left",
    EndReason.FAULT: "System fault",
}


def end_reason_text(reason: EndReason, lang: Language) -> str:
    return reason.label_zh if lang == "zh" else _END_REASON_EN[reason]


def state_label(state: VisitState, lang: Language) -> str:
    return state.label_zh if lang == "zh" else state.value.replace("_", " ")


def remaining_seconds(visit: Visit, now: datetime) -> int:
    """Whole seconds left, rounded up (a countdown shows 0 only when it is over)."""
    return math.ceil(visit.remaining(now).total_seconds())


# -- schemas -------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    kind: type
    required: bool = True
    max_len: int | None = None
    choices: frozenset[str] | None = None

    def check(self, name: str, value: Any) -> None:
        # bool is an int in Python; JSON true is never a valid number or string here.
        if not isinstance(value, self.kind) or (self.kind is not bool and isinstance(value, bool)):
            raise protocol_error("invalid_field", field=name, detail=name)
        if self.max_len is not None and isinstance(value, str) and len(value) > self.max_len:
            raise ProtocolError(
                "too_long",
                f"{name} 内容过长（不超过{self.max_len}个字符）",
                f"{name} is too long (at most {self.max_len} characters)",
                field=name,
            )
        if self.choices is not None and value not in self.choices:
            raise protocol_error("invalid_field", field=name, detail=name)


Schema = Mapping[str, Field]


def validate(schema: Schema, message: Mapping[str, Any]) -> None:
    """Check declared fields; unknown extra fields are ignored (newer clients)."""
    for name, spec in schema.items():
        if name not in message or message[name] is None:
            if spec.required:
                raise protocol_error("invalid_field", field=name, detail=name)
            continue
        spec.check(name, message[name])


Handler = Callable[["CommandContext", Mapping[str, Any]], Awaitable[Frame | None]]


@dataclass(frozen=True)
class Command:
    type: str
    roles: frozenset[str]
    schema: Schema
    handler: Handler = field(repr=False)


@dataclass
class CommandRegistry:
    commands: dict[str, Command] = field(default_factory=dict)

    def command(
        self, type_: str, *, roles: set[str] | frozenset[str], schema: Schema | None = None
    ) -> Callable[[Handler], Handler]:
        unknown = set(roles) - ROLES
        if unknown:
            raise ValueError(f"unknown roles {unknown}")

        def register(handler: Handler) -> Handler:
            if type_ in self.commands:
                raise ValueError(f"command {type_!r} declared twice")
            self.commands[type_] = Command(type_, frozenset(roles), dict(schema or {}), handler)
            return handler

        return register

    def get(self, type_: str) -> Command | None:
        return self.commands.get(type_)


#: The commands of this protocol version (filled in by ``server.live.handlers``).
COMMANDS = CommandRegistry()
command = COMMANDS.command

#: The handshake's schema: checked by the connection before any command.
HELLO_SCHEMA: Schema = {
    "version": Field(int),
    "role": Field(str, choices=frozenset(ROLES)),
    "token": Field(str, required=False, max_len=256),
    "code": Field(str, required=False, max_len=32),
    "device_token": Field(str, required=False, max_len=256),
    "visit_id": Field(str, required=False, max_len=MAX_ID_CHARS),
    "lang": Field(str, required=False, choices=frozenset({"zh", "en"})),
}
