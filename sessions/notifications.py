"""Notices to relatives (SMS), kept in an outbox until delivered.

A notice is written in the same transaction as the decision it reports, so a
gateway that is down loses nothing: the dispatcher (``server.notify``) sends
pending notices later with back-off. A notice holds no secret; the text of a
"visit scheduled" notice is built at send time from the visit's sealed
credential, so the 会见码 never sits in the outbox in plain text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

MAX_ATTEMPTS = 8


class NoticeKind(StrEnum):
    APPLICATION_RECEIVED = "application_received"
    APPLICATION_RETURNED = "application_returned"
    APPLICATION_APPROVED = "application_approved"
    APPLICATION_REJECTED = "application_rejected"
    VISIT_SCHEDULED = "visit_scheduled"


@dataclass
class Notice:
    id: str
    kind: NoticeKind
    application_id: str
    phone: str
    created_at: datetime
    attempts: int = 0
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    failed_at: datetime | None = None
    last_error: str | None = None

    @property
    def pending(self) -> bool:
        return self.sent_at is None and self.failed_at is None

    def due(self, now: datetime) -> bool:
        return self.pending and (self.next_attempt_at is None or self.next_attempt_at <= now)

    def delivered(self, now: datetime) -> None:
        self.sent_at = now
        self.last_error = None

    def attempt_failed(self, error: str, now: datetime) -> None:
        """Back off exponentially (30 s, 1 min, 2 min … capped at 1 h); give up after
        ``MAX_ATTEMPTS`` so the officer console can show the notice as failed."""
        self.attempts += 1
        self.last_error = error[:500]
        if self.attempts >= MAX_ATTEMPTS:
            self.failed_at = now
            self.next_attempt_at = None
        else:
            self.next_attempt_at = now + min(
                timedelta(hours=1), timedelta(seconds=30 * 2 ** (self.attempts - 1))
            )
