"""TURN credentials per participant (coturn use-auth-secret) and the list a
page receives: never a public default, secrets only where configured."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from server.ice import TTL, ice_servers_for
from server.settings import IceServer, Settings, SettingsError

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def test_minted_turn_credentials_follow_coturns_rest_scheme_and_expire() -> None:
    servers = (IceServer(urls=("turn:turn.facility.example:3478",), shared_secret="s3cret"),)
    [entry] = ice_servers_for(servers, "relative@v1", NOW)
    expiry, who = entry["username"].split(":", 1)
    assert int(expiry) == int((NOW + TTL).timestamp()) and who == "relative@v1"
    expected = hmac.new(b"s3cret", entry["username"].encode(), hashlib.sha1).digest()
    assert base64.b64decode(entry["credential"]) == expected
    [other] = ice_servers_for(servers, "kiosk@v1", NOW)
    assert other["credential"] != entry["credential"]


def test_stun_and_static_turn_pass_through_and_nothing_is_added() -> None:
    servers = (
        IceServer(urls=("stun:stun.facility.example:3478",)),
        IceServer(urls=("turn:t.example:3478",), username="u", credential="p"),
    )
    assert ice_servers_for(servers, "x", NOW) == [
        {"urls": ["stun:stun.facility.example:3478"]},
        {"urls": ["turn:t.example:3478"], "username": "u", "credential": "p"},
    ]
    assert ice_servers_for((), "x", NOW) == []


def test_turn_secret_comes_from_the_environment_and_stays_out_of_repr() -> None:
    settings = Settings.from_sources(
        {"turn": "turn:t.example:3478"}, environ={"VISITGATE_TURN_SECRET": "s3cret"}
    )
    [server] = settings.ice_servers
    assert server.shared_secret == "s3cret" and "s3cret" not in repr(settings)
    with pytest.raises(SettingsError, match="VISITGATE_TURN_SECRET"):
        Settings.from_sources({"turn": "turn:t.example:3478"}, environ={})
