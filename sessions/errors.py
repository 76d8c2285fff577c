"""Typed domain errors carrying a message in Chinese (default) and English.

Every rule the domain enforces fails with a ``DomainError`` subclass so the web
layer can map it to an HTTP 4xx (or a WebSocket error frame) and show the
message in the user's language; nothing else should escape a service call.
"""

from __future__ import annotations

from typing import Literal

Language = Literal["zh", "en"]


class DomainError(Exception):
    """A rule was broken by the caller's input; safe to show to the user."""

    #: HTTP-ish status the web layer should use.
    status: int = 400

    def __init__(self, code: str, zh: str, en: str, *, field: str | None = None) -> None:
        super().__init__(f"{code}: {en}")
        self.code = code
        self.zh = zh
        self.en = en
        self.field = field

    def message(self, lang: Language = "zh") -> str:
        return self.zh if lang == "zh" else self.en

    def as_dict(self, lang: Language = "zh") -> dict[str, str | None]:
        return {"code": self.code, "message": self.message(lang), "field": self.field}


class ValidationError(DomainError):
    """A field of the input is malformed (ID number, phone, relationship...)."""

    status = 422


class RuleViolation(DomainError):
    """The input is well-formed but a facility rule forbids it (quota, eligibility)."""

    status = 409


class InvalidTransition(DomainError):
    """The aggregate is not in a state where this command is allowed."""

    status = 409


class NotFound(DomainError):
    status = 404


class PermissionDenied(DomainError):
    status = 403


class CredentialRejected(DomainError):
    """A visit link or 会见码 did not admit the caller (wrong, expired, used, locked)."""

    status = 403


class Conflict(DomainError):
    """Two writers raced for the same thing (a kiosk slot, a username)."""

    status = 409


class ChainContention(Conflict):
    """Two units of work tried to extend the audit chain at once; retry the loser."""
