"""Plumbing shared by every use case: one transaction per call, events sealed
into the audit chain before commit and published after it, slow hashing off
the event loop, and the lookups that turn a missing id into a clear error."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TypeVar

from ..applications import Application
from ..appointments import Appointment
from ..clock import Clock
from ..credentials import IssuedSecrets
from ..detainees import Detainee, IneligibleReason
from ..errors import (
    ChainContention,
    NotFound,
    ValidationError,
)
from ..events import Event, EventName, SubjectType
from ..facilities import Facility, FacilityRules
from ..ids import new_id
from ..notifications import Notice, NoticeKind
from ..officers import Officer
from ..passwords import SecretHasher
from ..quotas import QuotaIssue
from ..repository import UnitOfWork
from ..sealing import Sealer
from ..visits import Visit, VisitState

T = TypeVar("T")
Publisher = Callable[[Sequence[Event]], Awaitable[None]]
ACTIVE_VISIT_STATES = frozenset(
    {VisitState.LOBBY, VisitState.CONNECTING, VisitState.IDENTITY_CHECK, VisitState.LIVE}
)
_CHAIN_RETRIES = 5
#: Longest chat message and officer warning, in characters (after cleaning).
CHAT_MAX_CHARS = 500
WARNING_MAX_CHARS = 200
#: The two sides of a visit: who can chat, who can be muted.
VISIT_SIDES = frozenset({"relative", "kiosk"})
#: Bidirectional-override characters: invisible, and able to make a message read backwards.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


async def _no_publish(events: Sequence[Event]) -> None:
    return None


@dataclass(frozen=True)
class VisitorInput:
    name: str
    id_number: str
    phone: str
    relationship: str
    id_photo_ref: str
    #: The enrolment of the photo's face (``recognition.enrolment``), 1024 bytes.
    face_encoding: bytes | None = None


@dataclass(frozen=True)
class ReviewBrief:
    """What the reviewing officer sees beside an application."""

    application: Application
    detainee: Detainee
    ineligible: list[IneligibleReason]
    quota_issues: list[QuotaIssue]


@dataclass(frozen=True)
class ApplicationStatus:
    """What the relative's status page shows."""

    application: Application
    facility: Facility
    appointment: Appointment | None
    visit: Visit | None
    #: The link token and code, while the visit's link is valid and a sealer is set.
    secrets: IssuedSecrets | None


@dataclass(frozen=True)
class KioskSlot:
    appointment: Appointment
    visit: Visit | None
    detainee_name: str
    visitors: list[str]


@dataclass(frozen=True)
class Scheduled:
    appointment: Appointment
    visit: Visit
    secrets: IssuedSecrets


@dataclass
class ServiceBase:
    uow: Callable[[], UnitOfWork]
    clock: Clock
    hasher: SecretHasher
    publish: Publisher = field(default=_no_publish)
    #: Keeps a sealed copy of each visit's link and code for the status page;
    #: without one (tests, tools) nothing can show them again.
    sealer: Sealer | None = None
    #: A real argon2 hash to verify against for unknown usernames (timing).
    _dummy: str | None = field(default=None, init=False, repr=False)

    # -- plumbing -----------------------------------------------------------
    async def _transaction(self, work: Callable[[UnitOfWork, list[Event]], Awaitable[T]]) -> T:
        """Run ``work`` in a unit of work, seal its events into the audit chain,
        commit, publish. Retries only when another writer extended the chain first."""
        for attempt in range(_CHAIN_RETRIES):
            events: list[Event] = []
            try:
                async with self.uow() as uow:
                    result = await work(uow, events)
                    if events:
                        await uow.audit.append(events)
                    await uow.commit()
            except ChainContention:
                if attempt == _CHAIN_RETRIES - 1:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
                continue
            if events:
                await self.publish(events)
            return result
        raise AssertionError("unreachable")

    async def _hash(self, secret: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, secret)

    async def _verify(self, hashed: str, secret: str) -> bool:
        return await asyncio.to_thread(self.hasher.verify, hashed, secret)

    @staticmethod
    async def _officer(uow: UnitOfWork, officer_id: str) -> Officer:
        officer = await uow.officers.get(officer_id)
        if officer is None or not officer.active:
            raise NotFound("officer_not_found", "民警账号不存在或已停用", "No such active officer")
        return officer

    @staticmethod
    async def _facility(uow: UnitOfWork, facility_id: str) -> Facility:
        facility = await uow.facilities.get(facility_id)
        if facility is None:
            raise NotFound(
                "facility_not_found", "监所不存在", "No such facility", field="facility_id"
            )
        return facility

    @staticmethod
    async def _application(uow: UnitOfWork, application_id: str) -> Application:
        application = await uow.applications.get(application_id)
        if application is None:
            raise NotFound("application_not_found", "申请不存在", "No such application")
        return application

    @staticmethod
    async def _visit(uow: UnitOfWork, visit_id: str) -> Visit:
        visit = await uow.visits.get(visit_id)
        if visit is None:
            raise NotFound("visit_not_found", "会见不存在", "No such visit")
        return visit

    async def _notify(self, uow: UnitOfWork, application: Application, kind: NoticeKind) -> None:
        """Queue a notice to the applicant in the same transaction as the decision."""
        await uow.outbox.add(
            Notice(new_id(), kind, application.id, application.applicant.phone, self.clock.now())
        )


def visit_text(raw: str, limit: int, field_name: str) -> str:
    """Text typed during a visit, made safe to store and show: control and
    bidi-override characters removed (newlines kept), trimmed, non-empty and at
    most ``limit`` characters. Clients render it as text, never as HTML."""
    cleaned = "".join(
        ch
        for ch in str(raw)
        if ch == "\n" or (ch >= " " and ch != "\x7f" and not "\x80" <= ch <= "\x9f")
        if ch not in _BIDI_CONTROLS
    ).strip()
    if not cleaned:
        raise ValidationError("text_empty", "内容不能为空", "The text is empty", field=field_name)
    if len(cleaned) > limit:
        raise ValidationError(
            "text_too_long",
            f"内容过长（不超过{limit}个字）",
            f"The text is too long (at most {limit} characters)",
            field=field_name,
        )
    return cleaned


def _visit_event(visit: Visit, name: EventName, actor: str, at: datetime, **data: object) -> Event:
    return Event.of(
        name, SubjectType.VISIT, visit.id, actor=actor, at=at, facility_id=visit.facility_id, **data
    )


def today_in(facility: Facility, clock: Clock) -> date:
    return facility.local_date(clock.now())


def _rules_dict(rules: FacilityRules) -> dict[str, object]:
    return {
        "visits_per_period": rules.visits_per_period,
        "period": rules.period,
        "max_visit_minutes": rules.max_visit_minutes,
        "max_people": rules.max_people,
        "unexpected_face_policy": rules.unexpected_face_policy,
        "opening_hours": rules.opening_hours.as_text(),
    }
