"""ICE servers as handed to one participant.

STUN and static TURN entries pass through; a TURN entry with a shared secret
gets credentials minted for this participant by coturn's ``use-auth-secret``
scheme (the TURN REST API draft): username ``<expiry unix time>:<participant>``,
password ``base64(HMAC-SHA1(secret, username))``. They expire after
``TTL``, so a leaked page cannot relay media through our TURN server for long.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Any

from .settings import IceServer

TTL = timedelta(hours=3)


def turn_credentials(secret: str, participant: str, now: datetime) -> tuple[str, str]:
    username = f"{int((now + TTL).timestamp())}:{participant}"
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers_for(
    servers: tuple[IceServer, ...], participant: str, now: datetime
) -> list[dict[str, Any]]:
    """The RTCPeerConnection ``iceServers`` list for one participant."""
    result: list[dict[str, Any]] = []
    for server in servers:
        entry: dict[str, Any] = {"urls": list(server.urls)}
        if server.shared_secret:
            entry["username"], entry["credential"] = turn_credentials(
                server.shared_secret, participant, now
            )
        elif server.username:
            entry["username"], entry["credential"] = server.username, server.credential
        result.append(entry)
    return result
