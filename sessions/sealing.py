"""Reversible encryption of the few secrets a person must be able to see again.

A visit's link token and 会见码 are checked against their hashes, but the
relative's status page has to show them again; so the service also keeps a
copy sealed with a key that lives outside the database (``server.secrets``).
The domain only knows this port; the Fernet implementation is an adapter.
"""

from __future__ import annotations

import json
from typing import Protocol

from .credentials import IssuedSecrets


class Sealer(Protocol):
    def seal(self, plaintext: str) -> str: ...
    def unseal(self, sealed: str) -> str:
        """Raise ``ValueError`` if the text was not sealed with this key or was altered."""
        ...


def seal_secrets(sealer: Sealer, secrets: IssuedSecrets) -> str:
    return sealer.seal(json.dumps({"token": secrets.token, "code": secrets.code}))


def unseal_secrets(sealer: Sealer, sealed: str) -> IssuedSecrets:
    data = json.loads(sealer.unseal(sealed))
    return IssuedSecrets(str(data["token"]), str(data["code"]))
