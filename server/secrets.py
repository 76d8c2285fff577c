"""The server's own key: seals visit secrets (Fernet) and signs session cookies.

It comes from ``VISITGATE_SECRET_KEY`` (via settings) or, by default, from
``<data-dir>/secret.key``, created on first start with mode 0600. It must not
live in the database: whoever copies the database alone must not be able to
read the sealed visit codes.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "secret.key"


def load_or_create_key(data_dir: Path, configured: str | None = None) -> bytes:
    if configured:
        key = configured.encode("ascii")
        Fernet(key)  # raises ValueError with a clear message if malformed
        return key
    path = data_dir / KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key


class FernetSealer:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def unseal(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise ValueError("sealed with another key or altered") from exc
