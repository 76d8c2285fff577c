"""The service layer: each public method is one use case in one transaction.

A use case loads aggregates through a unit of work, lets them apply the rules
(they record events), appends those events to the audit chain in the same
transaction, commits, and only then publishes the events. Slow hashing
(argon2) runs in a thread so an event loop calling in never stalls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TypeVar

from .applications import Application, ApplicationState, Visitor, parse_reason
from .appointments import Appointment, Kiosk
from .audit import ChainVerdict, verify_chain
from .clock import Clock, ensure_aware
from .credentials import IssuedSecrets, VisitCredential, new_token, token_digest
from .detainees import Detainee, IneligibleReason
from .errors import (
    ChainContention,
    CredentialRejected,
    InvalidTransition,
    NotFound,
    RuleViolation,
    ValidationError,
)
from .events import SYSTEM, Event, EventName, SubjectType, officer_actor
from .facilities import Facility, FacilityKind, FacilityRules
from .ids import application_number, new_id
from .notifications import Notice, NoticeKind
from .officers import Officer, Role, validate_username
from .passwords import SecretHasher, validate_new_password
from .quotas import ExceptionKind, LeaderException, QuotaIssue, quota_issues, unresolved
from .repository import UnitOfWork
from .sealing import Sealer, seal_secrets, unseal_secrets
from .visits import EndReason, Visit, VisitKind, VisitState
from .workdays import CalendarOverride, Deadline, WorkdayCalendar

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
class VisitGateService:
    uow: Callable[[], UnitOfWork]
    clock: Clock
    hasher: SecretHasher
    publish: Publisher = field(default=_no_publish)
    #: Keeps a sealed copy of each visit's link and code for the status page;
    #: without one (tests, tools) nothing can show them again.
    sealer: Sealer | None = None

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

    # -- facility set-up -----------------------------------------------------
    async def _check_setup_actor(self, uow: UnitOfWork, actor: str, facility_id: str) -> None:
        """Set-up done from the console must come from an admin of that facility;
        the command line and the demo act as themselves ("cli", "demo")."""
        if actor.startswith("officer:"):
            officer = await self._officer(uow, actor.removeprefix("officer:"))
            officer.require(Role.ADMIN)
            officer.require_facility(facility_id)

    async def create_facility(
        self,
        name: str,
        kind: FacilityKind,
        *,
        actor: str = SYSTEM,
        time_zone: str = "Asia/Shanghai",
        rules: FacilityRules | None = None,
    ) -> Facility:
        facility = Facility(
            new_id(), name.strip(), kind, rules or FacilityRules.default_for(kind), time_zone
        )

        async def work(uow: UnitOfWork, events: list[Event]) -> Facility:
            await uow.facilities.add(facility)
            events.append(
                Event.of(
                    EventName.FACILITY_CREATED,
                    SubjectType.FACILITY,
                    facility.id,
                    actor=actor,
                    at=self.clock.now(),
                    facility_id=facility.id,
                    name=facility.name,
                    kind=kind,
                    max_visit_minutes=facility.rules.max_visit_minutes,
                )
            )
            return facility

        return await self._transaction(work)

    async def register_detainee(self, detainee: Detainee, *, actor: str = SYSTEM) -> Detainee:
        async def work(uow: UnitOfWork, events: list[Event]) -> Detainee:
            await self._facility(uow, detainee.facility_id)
            await self._check_setup_actor(uow, actor, detainee.facility_id)
            await uow.detainees.add(detainee)
            events.append(
                Event.of(
                    EventName.DETAINEE_REGISTERED,
                    SubjectType.DETAINEE,
                    detainee.id,
                    actor=actor,
                    at=self.clock.now(),
                    facility_id=detainee.facility_id,
                )
            )
            return detainee

        return await self._transaction(work)

    async def create_officer(
        self,
        *,
        facility_id: str,
        username: str,
        display_name: str,
        password: str,
        roles: frozenset[Role],
        actor: str = SYSTEM,
    ) -> Officer:
        clean_username = validate_username(username)
        password_hash = await self._hash(validate_new_password(password))
        officer = Officer(
            new_id(), facility_id, clean_username, display_name.strip(), password_hash, roles
        )

        async def work(uow: UnitOfWork, events: list[Event]) -> Officer:
            await self._facility(uow, facility_id)
            await self._check_setup_actor(uow, actor, facility_id)
            await uow.officers.add(officer)
            events.append(
                Event.of(
                    EventName.OFFICER_CREATED,
                    SubjectType.OFFICER,
                    officer.id,
                    actor=actor,
                    at=self.clock.now(),
                    facility_id=facility_id,
                    username=clean_username,
                    roles=roles,
                )
            )
            return officer

        return await self._transaction(work)

    async def authenticate(self, username: str, password: str) -> Officer:
        async with self.uow() as uow:
            officer = await uow.officers.get_by_username(username.strip().lower())
        # Verify against a real hash even for unknown users so timing does not
        # tell which usernames exist.
        stored = officer.password_hash if officer else await self._dummy_hash()
        ok = await self._verify(stored, password)
        if officer is None or not officer.active or not ok:
            raise CredentialRejected(
                "login_failed", "用户名或密码错误", "Wrong username or password"
            )
        return officer

    _dummy: str | None = field(default=None, init=False, repr=False)

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self._hash("visitgate-dummy-password-1")
        return self._dummy

    async def register_kiosk(
        self, facility_id: str, name: str, *, actor: str = SYSTEM
    ) -> tuple[Kiosk, str]:
        """Returns the kiosk and its device token (shown once, stored hashed)."""
        token = new_token()
        kiosk = Kiosk(new_id(), facility_id, name.strip(), token_digest(token))

        async def work(uow: UnitOfWork, events: list[Event]) -> Kiosk:
            await self._facility(uow, facility_id)
            await self._check_setup_actor(uow, actor, facility_id)
            await uow.kiosks.add(kiosk)
            events.append(
                Event.of(
                    EventName.KIOSK_REGISTERED,
                    SubjectType.KIOSK,
                    kiosk.id,
                    actor=actor,
                    at=self.clock.now(),
                    facility_id=facility_id,
                    name=kiosk.name,
                )
            )
            return kiosk

        return await self._transaction(work), token

    async def update_facility_rules(self, admin_id: str, rules: FacilityRules) -> Facility:
        async def work(uow: UnitOfWork, events: list[Event]) -> Facility:
            admin = await self._officer(uow, admin_id)
            admin.require(Role.ADMIN)
            facility = await self._facility(uow, admin.facility_id)
            before = facility.rules
            facility.rules = rules
            await uow.facilities.update(facility)
            events.append(
                Event.of(
                    EventName.FACILITY_RULES_CHANGED,
                    SubjectType.FACILITY,
                    facility.id,
                    actor=officer_actor(admin.id),
                    at=self.clock.now(),
                    facility_id=facility.id,
                    before=_rules_dict(before),
                    after=_rules_dict(rules),
                )
            )
            return facility

        return await self._transaction(work)

    async def update_detainee(self, admin_id: str, detainee: Detainee) -> Detainee:
        """Record the facts that decide eligibility (refusal, 严管, detox, transfer...)."""

        async def work(uow: UnitOfWork, events: list[Event]) -> Detainee:
            admin = await self._officer(uow, admin_id)
            admin.require(Role.ADMIN)
            stored = await uow.detainees.get(detainee.id)
            if stored is None:
                raise NotFound("detainee_not_found", "被羁押人员不存在", "No such detainee")
            admin.require_facility(stored.facility_id)
            detainee.facility_id = stored.facility_id
            await uow.detainees.update(detainee)
            events.append(
                Event.of(
                    EventName.DETAINEE_UPDATED,
                    SubjectType.DETAINEE,
                    detainee.id,
                    actor=officer_actor(admin.id),
                    at=self.clock.now(),
                    facility_id=detainee.facility_id,
                    refuses=detainee.refuses_video_visits,
                    strict_management=detainee.strict_management,
                    serious_violation=detainee.serious_violation,
                    foreign_national=detainee.foreign_national,
                    in_detox_treatment=detainee.in_detox_treatment,
                    pending_criminal_transfer=detainee.pending_criminal_transfer,
                    released_on=detainee.released_on,
                )
            )
            return detainee

        return await self._transaction(work)

    async def set_officer_active(self, admin_id: str, officer_id: str, active: bool) -> Officer:
        async def work(uow: UnitOfWork, events: list[Event]) -> Officer:
            admin = await self._officer(uow, admin_id)
            admin.require(Role.ADMIN)
            officer = await uow.officers.get(officer_id)
            if officer is None:
                raise NotFound("officer_not_found", "民警账号不存在", "No such officer")
            admin.require_facility(officer.facility_id)
            if officer.id == admin.id and not active:
                raise ValidationError(
                    "cannot_disable_self",
                    "不能停用自己的账号",
                    "You cannot disable your own account",
                )
            officer.active = active
            await uow.officers.update(officer)
            events.append(
                Event.of(
                    EventName.OFFICER_UPDATED,
                    SubjectType.OFFICER,
                    officer.id,
                    actor=officer_actor(admin.id),
                    at=self.clock.now(),
                    facility_id=officer.facility_id,
                    active=active,
                )
            )
            return officer

        return await self._transaction(work)

    async def kiosk_by_token(self, token: str) -> Kiosk:
        async with self.uow() as uow:
            kiosk = await uow.kiosks.get_by_token_hash(token_digest(token))
        if kiosk is None or not kiosk.active:
            raise CredentialRejected("kiosk_token", "终端未授权", "This kiosk is not authorised")
        return kiosk

    # -- calendar --------------------------------------------------------------
    async def working_calendar(self) -> WorkdayCalendar:
        async with self.uow() as uow:
            return WorkdayCalendar(await uow.calendar.list())

    async def set_calendar_override(self, officer_id: str, override: CalendarOverride) -> None:
        async def work(uow: UnitOfWork, events: list[Event]) -> None:
            (await self._officer(uow, officer_id)).require(Role.ADMIN)
            await uow.calendar.put(override)
            events.append(
                Event.of(
                    EventName.CALENDAR_OVERRIDE_SET,
                    SubjectType.CALENDAR,
                    override.day.isoformat(),
                    actor=officer_actor(officer_id),
                    at=self.clock.now(),
                    facility_id=None,
                    is_workday=override.is_workday,
                    note=override.note,
                )
            )

        await self._transaction(work)

    # -- applications ------------------------------------------------------------
    async def submit_application(
        self,
        *,
        facility_id: str,
        detainee_name: str,
        visitors: Sequence[VisitorInput],
        reason: str,
        reason_detail: str = "",
    ) -> Application:
        now = self.clock.now()

        async def work(uow: UnitOfWork, events: list[Event]) -> Application:
            facility = await self._facility(uow, facility_id)
            today = facility.local_date(now)
            people = [
                Visitor.validated(
                    name=v.name,
                    id_number=v.id_number,
                    phone=v.phone,
                    relationship=v.relationship,
                    id_photo_ref=v.id_photo_ref,
                    today=today,
                    prefix=f"visitors.{i}.",
                )
                for i, v in enumerate(visitors)
            ]
            matches = await uow.detainees.find_by_name(facility_id, " ".join(detainee_name.split()))
            current = [d for d in matches if d.released_on is None or d.released_on > today]
            if len(current) != 1:
                raise ValidationError(
                    "detainee_not_found",
                    "未找到该被会见人，请核对姓名和监所",
                    "No such detainee in this facility; check the name and the facility",
                    field="detainee_name",
                )
            calendar = WorkdayCalendar(await uow.calendar.list())
            deadline: Deadline = calendar.add_working_days(today)
            application = Application.submit(
                id=new_id(),
                number=application_number(now.astimezone(facility.tz)),
                facility_id=facility_id,
                detainee_id=current[0].id,
                visitors=people,
                reason=parse_reason(reason),
                reason_detail=reason_detail,
                max_people=facility.rules.max_people,
                now=now,
                deadline=deadline,
            )
            await uow.applications.add(application)
            await self._notify(uow, application, NoticeKind.APPLICATION_RECEIVED)
            events.extend(application.events)
            return application

        return await self._transaction(work)

    async def _notify(self, uow: UnitOfWork, application: Application, kind: NoticeKind) -> None:
        """Queue a notice to the applicant in the same transaction as the decision."""
        await uow.outbox.add(
            Notice(new_id(), kind, application.id, application.applicant.phone, self.clock.now())
        )

    async def application_status(self, number: str, id_number: str) -> ApplicationStatus:
        """For the relative: the application number plus any visitor's ID number.
        Once scheduled, it includes the visit's link and code while they are valid."""
        wanted = id_number.strip().upper()
        async with self.uow() as uow:
            application = await uow.applications.get_by_number(number.strip())
            if application is None or all(v.id_number != wanted for v in application.visitors):
                raise NotFound(
                    "application_lookup_failed",
                    "未找到申请，请核对申请编号和身份证号码",
                    "No application matches that number and ID number",
                )
            return await self._status(uow, application)

    async def status_of(self, application_id: str) -> ApplicationStatus:
        """The same view for trusted callers (the notice dispatcher)."""
        async with self.uow() as uow:
            return await self._status(uow, await self._application(uow, application_id))

    async def _status(self, uow: UnitOfWork, application: Application) -> ApplicationStatus:
        facility = await self._facility(uow, application.facility_id)
        booked = [
            a for a in await uow.appointments.for_application(application.id) if not a.cancelled
        ]
        appointment = booked[-1] if booked else None
        visit = await uow.visits.get_by_appointment(appointment.id) if appointment else None
        secrets: IssuedSecrets | None = None
        if visit is not None and self.sealer is not None:
            for credential in await uow.credentials.for_visit(visit.id):
                if credential.revoked_at is None and credential.sealed_secrets:
                    try:
                        secrets = unseal_secrets(self.sealer, credential.sealed_secrets)
                    except ValueError:
                        secrets = None  # sealed under an old key: the officer must reissue
        return ApplicationStatus(application, facility, appointment, visit, secrets)

    async def review_brief(self, officer_id: str, application_id: str) -> ReviewBrief:
        async with self.uow() as uow:
            officer = await self._officer(uow, officer_id)
            application = await self._application(uow, application_id)
            officer.require_facility(application.facility_id)
            facility = await self._facility(uow, application.facility_id)
            detainee = await uow.detainees.get(application.detainee_id)
            assert detainee is not None
            booked = await uow.appointments.for_detainee(detainee.id)
        today = facility.local_date(self.clock.now())
        issues = quota_issues(
            facility.rules,
            visit_date=today,
            admitted_on=detainee.admitted_on,
            other_visit_dates=[facility.local_date(a.starts_at) for a in booked],
            people=len(application.visitors),
        )
        return ReviewBrief(
            application,
            detainee,
            detainee.ineligibility(facility.kind, today),
            unresolved(issues, application.exceptions),
        )

    async def _decide(
        self,
        officer_id: str,
        application_id: str,
        act: Callable[[Application, Officer, datetime], None],
        notice: NoticeKind | None = None,
    ) -> Application:
        async def work(uow: UnitOfWork, events: list[Event]) -> Application:
            officer = await self._officer(uow, officer_id)
            application = await self._application(uow, application_id)
            act(application, officer, self.clock.now())
            await uow.applications.update(application)
            if notice is not None:
                await self._notify(uow, application, notice)
            events.extend(application.events)
            return application

        return await self._transaction(work)

    async def accept(self, officer_id: str, application_id: str) -> Application:
        return await self._decide(officer_id, application_id, lambda a, o, now: a.accept(o, now))

    async def return_incomplete(
        self, officer_id: str, application_id: str, reason: str
    ) -> Application:
        return await self._decide(
            officer_id,
            application_id,
            lambda a, o, now: a.return_incomplete(o, reason, now),
            NoticeKind.APPLICATION_RETURNED,
        )

    async def approve(self, officer_id: str, application_id: str) -> Application:
        """Approve; refused while the detainee is ineligible. Quota issues are
        shown as warnings here and enforced when the visit is scheduled."""
        brief = await self.review_brief(officer_id, application_id)
        if brief.ineligible:
            raise RuleViolation(
                "detainee_ineligible",
                "不安排视频会见：" + "；".join(r.zh for r in brief.ineligible),
                "No video visit: " + "; ".join(r.en for r in brief.ineligible),
            )
        warnings = [i.zh for i in brief.quota_issues]
        return await self._decide(
            officer_id,
            application_id,
            lambda a, o, now: a.approve(o, now, warnings=warnings),
            NoticeKind.APPLICATION_APPROVED,
        )

    async def reject(self, officer_id: str, application_id: str, reason: str) -> Application:
        return await self._decide(
            officer_id,
            application_id,
            lambda a, o, now: a.reject(o, reason, now),
            NoticeKind.APPLICATION_REJECTED,
        )

    async def grant_exception(
        self,
        leader_id: str,
        application_id: str,
        kind: ExceptionKind,
        reason: str,
        *,
        extra_minutes: int = 0,
        extra_people: int = 0,
    ) -> Application:
        def act(application: Application, leader: Officer, now: datetime) -> None:
            leader.require_facility(application.facility_id)
            exception = LeaderException.grant(
                kind,
                granted_by=leader.id,
                reason=reason,
                at=now,
                extra_minutes=extra_minutes,
                extra_people=extra_people,
            )
            application.grant_exception(exception, leader)

        return await self._decide(leader_id, application_id, act)

    # -- scheduling ----------------------------------------------------------
    async def schedule(
        self, officer_id: str, application_id: str, kiosk_id: str, starts_at: datetime
    ) -> Scheduled:
        """Book a kiosk slot for an approved application, create the visit and
        issue its link + 会见码 (returned once, stored hashed)."""
        ensure_aware(starts_at)
        # argon2 is slow: hash the new code before the transaction, off the loop.
        issued = IssuedSecrets.generate()
        code_hash = await self._hash(issued.code)

        async def work(uow: UnitOfWork, events: list[Event]) -> Scheduled:
            now = self.clock.now()
            officer = await self._officer(uow, officer_id)
            application = await self._application(uow, application_id)
            officer.require(Role.DUTY)
            officer.require_facility(application.facility_id)
            facility = await self._facility(uow, application.facility_id)
            kiosk = await uow.kiosks.get(kiosk_id)
            if kiosk is None:
                raise NotFound(
                    "kiosk_not_found", "会见终端不存在", "No such kiosk", field="kiosk_id"
                )
            detainee = await uow.detainees.get(application.detainee_id)
            assert detainee is not None
            visit_date = facility.local_date(starts_at)
            ineligible = detainee.ineligibility(facility.kind, visit_date)
            if ineligible:
                raise RuleViolation(
                    "detainee_ineligible",
                    "不安排视频会见：" + "；".join(r.zh for r in ineligible),
                    "No video visit: " + "; ".join(r.en for r in ineligible),
                )
            minutes = facility.rules.max_visit_minutes + application.extra_minutes()
            rules = facility.rules.with_changes(
                max_people=facility.rules.max_people + application.extra_people()
            )
            booked = await uow.appointments.for_detainee(detainee.id)
            issues = unresolved(
                quota_issues(
                    rules,
                    visit_date=visit_date,
                    admitted_on=detainee.admitted_on,
                    other_visit_dates=[facility.local_date(a.starts_at) for a in booked],
                    people=len(application.visitors),
                ),
                application.exceptions,
            )
            if issues:
                raise RuleViolation(
                    "quota_exceeded",
                    "；".join(i.zh for i in issues) + "。如有特殊情况，须经所领导批准",
                    "; ".join(i.en for i in issues) + ". A leader's exception is needed",
                )
            await uow.kiosks.lock_for_booking(kiosk.id)
            appointment = Appointment.book(
                id=new_id(),
                facility=facility,
                kiosk=kiosk,
                application_id=application.id,
                detainee_id=detainee.id,
                starts_at=starts_at,
                minutes=minutes,
                booked_by=officer.id,
                now=now,
                existing=await uow.appointments.overlapping(
                    kiosk.id, starts_at, starts_at + timedelta(minutes=minutes)
                ),
            )
            application.mark_scheduled(officer, appointment.id, now)
            visit = Visit(
                id=new_id(),
                facility_id=facility.id,
                appointment_id=appointment.id,
                application_id=application.id,
                kiosk_id=kiosk.id,
                kind=VisitKind.FAMILY,
                limit_minutes=minutes,
            )
            # The link stays valid past the slot's end by one visit length, so a
            # visit that went live late can still be rejoined until it ends.
            credential = VisitCredential.issue(
                id=new_id(),
                visit_id=visit.id,
                facility_id=facility.id,
                valid_from=appointment.join_opens_at,
                valid_until=appointment.ends_at + timedelta(minutes=minutes),
                secrets=issued,
                code_hash=code_hash,
                now=now,
                actor=officer_actor(officer.id),
                sealed_secrets=seal_secrets(self.sealer, issued) if self.sealer else None,
            )
            await uow.appointments.add(appointment)
            await uow.applications.update(application)
            await uow.visits.add(visit)
            await uow.credentials.add(credential)
            await self._notify(uow, application, NoticeKind.VISIT_SCHEDULED)
            events.extend(appointment.events + application.events + credential.events)
            return Scheduled(appointment, visit, issued)

        return await self._transaction(work)

    # -- the visit ---------------------------------------------------------
    async def join_visit(self, token: str, code: str) -> Visit:
        """The relative's link + 会见码. A wrong code is counted (and may lock
        the link) even though the call fails."""
        digest = token_digest(token)
        async with self.uow() as uow:
            credential = await uow.credentials.get_by_token_hash(digest)
        if credential is None:
            raise CredentialRejected("link_unknown", "会见链接无效", "This visit link is not valid")
        credential.check_usable(self.clock.now())
        matched = await self._verify(credential.code_hash, code.strip())
        failure: CredentialRejected | None = None

        async def work(uow: UnitOfWork, events: list[Event]) -> Visit:
            nonlocal failure
            fresh = await uow.credentials.get_by_token_hash(digest)
            assert fresh is not None
            now = self.clock.now()
            try:
                fresh.record_attempt(matched, now)
            except CredentialRejected as rejected:
                failure = rejected
            await uow.credentials.update(fresh)
            events.extend(fresh.events)
            visit = await self._visit(uow, fresh.visit_id)
            if failure is None:
                visit.enter_lobby(f"relative:{fresh.id}", now)
                await uow.visits.update(visit)
                events.extend(visit.events)
            return visit

        visit = await self._transaction(work)
        if failure is not None:
            raise failure
        return visit

    async def advance_visit(self, visit_id: str, to: VisitState, actor: str) -> Visit:
        """connecting (officer starts the connection), identity_check, live."""

        async def work(uow: UnitOfWork, events: list[Event]) -> Visit:
            visit = await self._visit(uow, visit_id)
            now = self.clock.now()
            if to is VisitState.CONNECTING:
                visit.start_connection(actor, now)
            elif to is VisitState.IDENTITY_CHECK:
                visit.begin_identity_check(actor, now)
            elif to is VisitState.LIVE:
                visit.go_live(actor, now)
            else:
                raise ValidationError(
                    "visit_target", "无效的会见状态", "Not a state one can move to"
                )
            await uow.visits.update(visit)
            events.extend(visit.events)
            return visit

        return await self._transaction(work)

    async def start_connection(self, officer_id: str, visit_id: str) -> Visit:
        async with self.uow() as uow:
            officer = await self._officer(uow, officer_id)
            visit = await self._visit(uow, visit_id)
        officer.require(Role.DUTY)
        officer.require_facility(visit.facility_id)
        return await self.advance_visit(visit_id, VisitState.CONNECTING, officer_actor(officer.id))

    async def end_visit(
        self, visit_id: str, reason: EndReason, actor: str, note: str | None = None
    ) -> Visit:
        """End the visit and kill its credentials in the same transaction."""

        async def work(uow: UnitOfWork, events: list[Event]) -> Visit:
            visit = await self._visit(uow, visit_id)
            now = self.clock.now()
            visit.end(reason, actor, now, note)
            await uow.visits.update(visit)
            events.extend(visit.events)
            for credential in await uow.credentials.for_visit(visit.id):
                credential.revoke(f"visit ended: {reason.value}", now, actor)
                await uow.credentials.update(credential)
                events.extend(credential.events)
            return visit

        return await self._transaction(work)

    async def cut_visit(self, officer_id: str, visit_id: str, note: str) -> Visit:
        async with self.uow() as uow:
            officer = await self._officer(uow, officer_id)
            visit = await self._visit(uow, visit_id)
        officer.require(Role.DUTY)
        officer.require_facility(visit.facility_id)
        return await self.end_visit(
            visit_id, EndReason.OFFICER_CUT, officer_actor(officer.id), note
        )

    async def end_overdue_visits(self, facility_id: str) -> list[Visit]:
        """End every live visit whose time is up; the media plane calls this on a
        timer and after a restart, so the limit holds even if no client is left."""
        async with self.uow() as uow:
            live = await uow.visits.list_by_state(facility_id, frozenset({VisitState.LIVE}))
        now = self.clock.now()
        return [
            await self.end_visit(v.id, EndReason.TIME_LIMIT, SYSTEM) for v in live if v.is_over(now)
        ]

    # -- during the live visit -------------------------------------------------
    async def _visit_action(
        self,
        visit_id: str,
        make: Callable[[UnitOfWork, Visit, datetime], Awaitable[Event]],
        officer_id: str | None = None,
    ) -> Event:
        """One audit event about a visit that does not change its state (a warning,
        a mute, a chat line); an officer acting must be on duty at the visit's facility."""

        async def work(uow: UnitOfWork, events: list[Event]) -> Event:
            visit = await self._visit(uow, visit_id)
            if officer_id is not None:
                officer = await self._officer(uow, officer_id)
                officer.require(Role.DUTY)
                officer.require_facility(visit.facility_id)
            if visit.state not in ACTIVE_VISIT_STATES:
                raise InvalidTransition(
                    "visit_not_active",
                    "会见未在进行中，不能执行此操作",
                    "The visit is not in progress",
                )
            event = await make(uow, visit, self.clock.now())
            events.append(event)
            return event

        return await self._transaction(work)

    async def warn(self, officer_id: str, visit_id: str, text: str) -> Event:
        """The duty officer's warning, shown on both screens."""
        body = visit_text(text, WARNING_MAX_CHARS, "text")

        async def make(uow: UnitOfWork, visit: Visit, now: datetime) -> Event:
            return _visit_event(
                visit, EventName.VISIT_WARNED, officer_actor(officer_id), now, text=body
            )

        return await self._visit_action(visit_id, make, officer_id)

    async def set_muted(self, officer_id: str, visit_id: str, side: str, muted: bool) -> Event:
        """Mute or unmute one side's audio; the media plane applies it."""
        if side not in VISIT_SIDES:
            raise ValidationError(
                "side_unknown", "只能静音家属或终端一方", "Only relative or kiosk", field="side"
            )

        async def make(uow: UnitOfWork, visit: Visit, now: datetime) -> Event:
            return _visit_event(
                visit,
                EventName.VISIT_MUTE_CHANGED,
                officer_actor(officer_id),
                now,
                side=side,
                muted=bool(muted),
            )

        return await self._visit_action(visit_id, make, officer_id)

    async def chat(self, visit_id: str, sender_role: str, text: str) -> Event:
        """A text line between the relative and the kiosk while the visit is live.
        Lawyer meetings are not monitored: only the fact and length are kept."""
        if sender_role not in VISIT_SIDES:
            raise ValidationError(
                "sender_unknown", "只有家属和终端可以发送消息", "Only relative or kiosk may chat"
            )
        body = visit_text(text, CHAT_MAX_CHARS, "text")

        async def make(uow: UnitOfWork, visit: Visit, now: datetime) -> Event:
            if visit.state is not VisitState.LIVE:
                raise InvalidTransition(
                    "chat_not_live",
                    "会见尚未开始，暂不能发送消息",
                    "Messages can be sent once the visit is live",
                )
            if sender_role == "kiosk":
                actor = f"kiosk:{visit.kiosk_id}"
            else:
                credentials = await uow.credentials.for_visit(visit.id)
                actor = f"relative:{credentials[0].id}" if credentials else "relative"
            if visit.recorded:
                return _visit_event(
                    visit, EventName.VISIT_CHAT_SENT, actor, now, sender=sender_role, text=body
                )
            return _visit_event(
                visit, EventName.VISIT_CHAT_SENT, actor, now, sender=sender_role, length=len(body)
            )

        event = await self._visit_action(visit_id, make)
        if "text" not in event.data:
            # The sockets still need the words; the ledger does not keep them.
            return Event(
                event.name,
                event.subject_type,
                event.subject_id,
                event.actor,
                event.at,
                event.facility_id,
                {**event.data, "text": body},
            )
        return event

    async def get_visit(self, visit_id: str) -> Visit:
        async with self.uow() as uow:
            return await self._visit(uow, visit_id)

    async def visit_for_token(self, token: str) -> tuple[Visit, VisitCredential]:
        """The visit a link points at, without admitting anyone (for the join page)."""
        async with self.uow() as uow:
            credential = await uow.credentials.get_by_token_hash(token_digest(token))
            if credential is None:
                raise CredentialRejected(
                    "link_unknown", "会见链接无效", "This visit link is not valid"
                )
            return await self._visit(uow, credential.visit_id), credential

    async def visit_context(self, visit: Visit) -> tuple[Facility, Appointment]:
        async with self.uow() as uow:
            facility = await self._facility(uow, visit.facility_id)
            appointment = await uow.appointments.get(visit.appointment_id)
        assert appointment is not None
        return facility, appointment

    async def kiosk_day(self, token: str) -> tuple[Kiosk, Facility, list[KioskSlot]]:
        """What a kiosk shows: today's appointments on it, who is calling, their state."""
        kiosk = await self.kiosk_by_token(token)
        async with self.uow() as uow:
            facility = await self._facility(uow, kiosk.facility_id)
            local_now = self.clock.now().astimezone(facility.tz)
            start = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
            slots = []
            for appointment in await uow.appointments.overlapping(
                kiosk.id, start, start + timedelta(days=1)
            ):
                application = await uow.applications.get(appointment.application_id)
                detainee = await uow.detainees.get(appointment.detainee_id)
                slots.append(
                    KioskSlot(
                        appointment,
                        await uow.visits.get_by_appointment(appointment.id),
                        detainee.name if detainee else "",
                        [f"{v.name}（{v.relationship.label_zh}）" for v in application.visitors]
                        if application
                        else [],
                    )
                )
        return kiosk, facility, slots

    # -- the ledger -------------------------------------------------------------
    async def verify_ledger(self) -> ChainVerdict:
        async with self.uow() as uow:
            records = await uow.audit.records()
        return verify_chain(records)


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


__all__ = [
    "ACTIVE_VISIT_STATES",
    "ApplicationState",
    "ReviewBrief",
    "Scheduled",
    "VisitGateService",
    "VisitorInput",
]


def _rules_dict(rules: FacilityRules) -> dict[str, object]:
    return {
        "visits_per_period": rules.visits_per_period,
        "period": rules.period,
        "max_visit_minutes": rules.max_visit_minutes,
        "max_people": rules.max_people,
        "unexpected_face_policy": rules.unexpected_face_policy,
        "opening_hours": rules.opening_hours.as_text(),
    }
