"""Secret hashing with argon2 (officer passwords and 会见码).

argon2 is deliberately slow (~tens of ms), so callers on an event loop run
these functions in a thread (see ``sessions.services``).
"""

from __future__ import annotations

from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .errors import ValidationError

MIN_PASSWORD_LENGTH = 10


class SecretHasher(Protocol):
    def hash(self, secret: str) -> str: ...
    def verify(self, hashed: str, secret: str) -> bool: ...


class Argon2Hasher:
    def __init__(
        self, *, time_cost: int = 2, memory_cost: int = 19 * 1024, parallelism: int = 1
    ) -> None:
        # OWASP's minimum argon2id profile: cheap enough for a login on a small box.
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )

    def hash(self, secret: str) -> str:
        return self._hasher.hash(secret)

    def verify(self, hashed: str, secret: str) -> bool:
        try:
            return self._hasher.verify(hashed, secret)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, hashed: str) -> bool:
        return self._hasher.check_needs_rehash(hashed)


def validate_new_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            "password_too_short",
            f"密码至少{MIN_PASSWORD_LENGTH}个字符",
            f"The password needs at least {MIN_PASSWORD_LENGTH} characters",
            field="password",
        )
    if password.isdigit() or password.isalpha():
        raise ValidationError(
            "password_too_simple",
            "密码须同时包含字母和数字或符号",
            "The password must mix letters with digits or symbols",
            field="password",
        )
    return password
