"""From an online application to an approved one: submit, the relative's
status look-up, accept or return, the reviewer's brief, approve or reject,
and the leader's exceptions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from ..applications import Application, Visitor, parse_reason
from ..credentials import IssuedSecrets
from ..errors import (
    NotFound,
    RuleViolation,
    ValidationError,
)
from ..events import Event
from ..ids import application_number, new_id
from ..notifications import NoticeKind
from ..officers import Officer
from ..quotas import ExceptionKind, LeaderException, quota_issues, unresolved
from ..repository import UnitOfWork
from ..sealing import unseal_secrets
from ..workdays import Deadline, WorkdayCalendar
from .base import (
    ApplicationStatus,
    ReviewBrief,
    VisitorInput,
)
from .setup import SetupUseCases


class ApplicationUseCases(SetupUseCases):
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
                    face_encoding=v.face_encoding,
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
