"""The service layer: each public method is one use case in one transaction.

A use case loads aggregates through a unit of work, lets them apply the rules
(they record events), appends those events to the audit chain in the same
transaction, commits, and only then publishes the events. Slow hashing
(argon2) runs in a thread so an event loop calling in never stalls.

The use cases are grouped by area (``setup``, ``applications``,
``scheduling``, ``visits``) and ``VisitGateService`` combines them.
"""

from __future__ import annotations

from .base import (
    ACTIVE_VISIT_STATES,
    CHAT_MAX_CHARS,
    VISIT_SIDES,
    WARNING_MAX_CHARS,
    ApplicationStatus,
    KioskSlot,
    Publisher,
    ReviewBrief,
    Scheduled,
    VisitorInput,
    today_in,
    visit_text,
)
from .visits import IDENTITY_REASON_MAX_CHARS, VisitUseCases, identity_not_checking


class VisitGateService(VisitUseCases):
    """Every use case; built with a unit-of-work factory, a clock, a hasher and,
    optionally, the event publisher and the sealer."""


__all__ = [
    "ACTIVE_VISIT_STATES",
    "CHAT_MAX_CHARS",
    "IDENTITY_REASON_MAX_CHARS",
    "VISIT_SIDES",
    "WARNING_MAX_CHARS",
    "ApplicationStatus",
    "KioskSlot",
    "Publisher",
    "ReviewBrief",
    "Scheduled",
    "VisitGateService",
    "VisitorInput",
    "identity_not_checking",
    "today_in",
    "visit_text",
]
