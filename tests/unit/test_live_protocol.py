"""The protocol's declarations: every command names its roles and schema, the
schema checks refuse what a handler must never see, and the one error shape."""

from __future__ import annotations

import pytest

from server.live import handlers  # noqa: F401  (declares the commands)
from server.live.protocol import (
    COMMANDS,
    HELLO_SCHEMA,
    MAX_SDP,
    CommandRegistry,
    Field,
    ProtocolError,
    error_frame,
    protocol_error,
    validate,
)
from sessions.errors import CredentialRejected


def test_each_command_declares_who_may_send_it() -> None:
    roles = {name: set(c.roles) for name, c in COMMANDS.commands.items()}
    assert roles == {
        "ping": {"relative", "kiosk", "officer"},
        "offer": {"relative", "kiosk", "officer"},
        "chat": {"relative", "kiosk"},
        "start": {"officer"},
        "admit": {"officer"},
        "deny": {"officer"},
        "warn": {"officer"},
        "mute": {"officer"},
        "cut": {"officer"},
        "leave": {"relative", "kiosk"},
    }


def test_a_command_cannot_be_declared_twice_or_for_an_unknown_role() -> None:
    registry = CommandRegistry()

    async def handler(ctx: object, msg: object) -> None:
        return None

    registry.command("x", roles={"kiosk"})(handler)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        registry.command("x", roles={"kiosk"})(handler)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        registry.command("y", roles={"warden"})


def test_schemas_refuse_missing_wrong_typed_oversized_and_unlisted_values() -> None:
    offer = COMMANDS.commands["offer"].schema
    validate(offer, {"sdp": "v=0", "extra": "ignored"})
    for bad in ({}, {"sdp": 5}, {"sdp": None}, {"sdp": "x" * (MAX_SDP + 1)}):
        with pytest.raises(ProtocolError) as refused:
            validate(offer, bad)
        assert refused.value.field == "sdp"
    mute = COMMANDS.commands["mute"].schema
    validate(mute, {"side": "kiosk", "muted": False})
    with pytest.raises(ProtocolError):
        validate(mute, {"side": "officer", "muted": True})
    with pytest.raises(ProtocolError):
        validate(mute, {"side": "kiosk", "muted": 1})
    with pytest.raises(ProtocolError):
        validate(HELLO_SCHEMA, {"version": True, "role": "relative"})  # true is not 1


def test_a_number_field_does_not_take_a_boolean() -> None:
    with pytest.raises(ProtocolError):
        Field(int).check("version", True)


def test_errors_have_one_shape_in_the_users_language() -> None:
    error = protocol_error("unknown_type")
    assert error_frame(3, error, "zh") == {
        "id": 3,
        "type": "error",
        "code": "unknown_type",
        "message": "不支持的消息类型",
    }
    assert error_frame(3, error, "en")["message"] == "Unknown message type"
    domain = CredentialRejected("code_wrong", "会见码不正确", "Wrong code", field="code")
    assert error_frame("a", domain, "zh") == {
        "id": "a",
        "type": "error",
        "code": "code_wrong",
        "message": "会见码不正确",
        "field": "code",
    }
