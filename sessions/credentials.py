"""Visit credentials: the link token and the 会见码.

The link (token of 256 random bits) says *which* visit; the 8-digit code the
relative types proves they received the notice. Both are bound to one
appointment and its time window, admit to that one visit only, and die when it
ends. Neither is stored in plain text: the token as its SHA-256 (it is already
unguessable, and we must look it up), the code with argon2 (only 10^8 values,
so a leaked table must not give it away). Repeated wrong codes lock the
credential: 5 in a row for 15 minutes, 10 in all for good (an officer reissues).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .errors import CredentialRejected
from .events import SYSTEM, Event, EventName, SubjectType

TOKEN_BYTES = 32
CODE_DIGITS = 8
MAX_CONSECUTIVE_FAILURES = 5
MAX_TOTAL_FAILURES = 10
LOCK_DURATION = timedelta(minutes=15)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_code() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))


@dataclass(frozen=True)
class IssuedSecrets:
    """Shown once (to the relative, in the notice); never stored."""

    token: str
    code: str

    @classmethod
    def generate(cls) -> IssuedSecrets:
        return cls(new_token(), new_code())


@dataclass
class VisitCredential:
    id: str
    visit_id: str
    facility_id: str
    token_hash: str
    code_hash: str
    valid_from: datetime
    valid_until: datetime
    consecutive_failures: int = 0
    total_failures: int = 0
    locked_until: datetime | None = None
    first_used_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
    #: The token and code encrypted with the server's key (never plain), so the
    #: relative's status page can show them again; dropped when revoked.
    sealed_secrets: str | None = None
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def issue(
        cls,
        *,
        id: str,
        visit_id: str,
        facility_id: str,
        valid_from: datetime,
        valid_until: datetime,
        secrets: IssuedSecrets,
        code_hash: str,
        now: datetime,
        actor: str,
        sealed_secrets: str | None = None,
    ) -> VisitCredential:
        """``code_hash`` is the slow hash of ``secrets.code``, computed by the caller
        (off the event loop); the plain secrets are never kept."""
        credential = cls(
            id=id,
            visit_id=visit_id,
            facility_id=facility_id,
            token_hash=token_digest(secrets.token),
            code_hash=code_hash,
            sealed_secrets=sealed_secrets,
            valid_from=valid_from,
            valid_until=valid_until,
        )
        credential._record(
            EventName.CREDENTIAL_ISSUED, actor, now, valid_from=valid_from, valid_until=valid_until
        )
        return credential

    @property
    def permanently_locked(self) -> bool:
        return self.total_failures >= MAX_TOTAL_FAILURES

    def check_usable(self, now: datetime) -> None:
        """Raise ``CredentialRejected`` unless a code may be tried right now."""
        if self.revoked_at is not None:
            raise CredentialRejected(
                "credential_revoked",
                "此会见链接已失效（会见已结束或已被撤销）",
                "This visit link is no longer valid (the visit ended or was revoked)",
            )
        if self.permanently_locked:
            raise CredentialRejected(
                "credential_locked",
                "会见码错误次数过多，链接已锁定，请联系监所重新发放",
                "Too many wrong codes; the link is locked. Please ask the facility for a new one",
            )
        if self.locked_until is not None and now < self.locked_until:
            raise CredentialRejected(
                "credential_locked_temporarily",
                f"会见码错误次数过多，请于{_minutes_left(now, self.locked_until)}分钟后再试",
                f"Too many wrong codes; try again in {_minutes_left(now, self.locked_until)} minutes",
            )
        if now < self.valid_from:
            raise CredentialRejected(
                "credential_not_yet_valid",
                "尚未到会见时间，请在预约时间前15分钟内进入",
                "It is not time yet; you can enter from 15 minutes before the appointment",
            )
        if now >= self.valid_until:
            raise CredentialRejected(
                "credential_expired",
                "会见时段已过，此链接已失效",
                "The appointment is over; this link has expired",
            )

    def record_attempt(self, code_matched: bool, now: datetime) -> None:
        """Apply the outcome of one code attempt; a wrong code raises after counting."""
        self.check_usable(now)
        if code_matched:
            self.consecutive_failures = 0
            self.locked_until = None
            if self.first_used_at is None:
                self.first_used_at = now
            return
        self.consecutive_failures += 1
        self.total_failures += 1
        self._record(EventName.CREDENTIAL_FAILED, SYSTEM, now, total_failures=self.total_failures)
        if self.permanently_locked or self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            self.locked_until = now + LOCK_DURATION
            self.consecutive_failures = 0
            self._record(
                EventName.CREDENTIAL_LOCKED,
                SYSTEM,
                now,
                until=self.locked_until,
                permanent=self.permanently_locked,
            )
        remaining = MAX_TOTAL_FAILURES - self.total_failures
        raise CredentialRejected(
            "code_wrong",
            f"会见码不正确（还可尝试{remaining}次）"
            if remaining > 0
            else "会见码不正确，链接已锁定",
            f"Wrong visit code ({remaining} attempts left)"
            if remaining > 0
            else "Wrong code; link locked",
            field="code",
        )

    def revoke(self, reason: str, now: datetime, actor: str = SYSTEM) -> None:
        if self.revoked_at is None:
            self.revoked_at = now
            self.revoked_reason = reason
            self.sealed_secrets = None
            self._record(EventName.CREDENTIAL_REVOKED, actor, now, reason=reason)

    def _record(self, name: EventName, actor: str, at: datetime, **data: object) -> None:
        self.events.append(
            Event.of(
                name,
                SubjectType.CREDENTIAL,
                self.id,
                actor=actor,
                at=at,
                facility_id=self.facility_id,
                visit_id=self.visit_id,
                **data,
            )
        )


def _minutes_left(now: datetime, until: datetime) -> int:
    """Whole minutes, rounded up: 10:00 left says 10, 9:01 left says 10, 0:30 left says 1."""
    return max(1, math.ceil((until - now).total_seconds() / 60))
