"""Booking an approved application onto a kiosk slot: the visit, its link and
会见码 (hashed, and sealed for the status page), and the notice."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..appointments import Appointment
from ..clock import ensure_aware
from ..credentials import IssuedSecrets, VisitCredential
from ..errors import (
    NotFound,
    RuleViolation,
)
from ..events import Event, officer_actor
from ..ids import new_id
from ..notifications import NoticeKind
from ..officers import Role
from ..quotas import quota_issues, unresolved
from ..repository import UnitOfWork
from ..sealing import seal_secrets
from ..visits import Visit, VisitKind
from .applications import ApplicationUseCases
from .base import (
    Scheduled,
)


class SchedulingUseCases(ApplicationUseCases):
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
