"""Read-side views for the officers' console: work queues and the ledger (台账).

Nothing here changes state; every view is scoped to the asking officer's
facility, so a page can never show another facility's people.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from .applications import Application, ApplicationState
from .appointments import Appointment, Kiosk
from .audit import AuditRecord
from .clock import Clock
from .detainees import Detainee
from .errors import NotFound
from .events import SubjectType
from .facilities import Facility
from .notifications import Notice
from .officers import Officer
from .repository import UnitOfWork
from .visits import Visit
from .workdays import WorkdayCalendar

#: Open applications due within this many working days are "due soon".
DUE_SOON_WORKING_DAYS = 1
OPEN_STATES = frozenset({ApplicationState.SUBMITTED, ApplicationState.ACCEPTED})


@dataclass(frozen=True)
class ApplicationRow:
    application: Application
    detainee: Detainee | None
    appointment: Appointment | None
    visit: Visit | None
    #: Working days left until the review deadline (negative: overdue); None once decided.
    working_days_left: int | None

    @property
    def overdue(self) -> bool:
        return self.working_days_left is not None and self.working_days_left < 0


@dataclass(frozen=True)
class Queues:
    to_accept: list[ApplicationRow]
    to_review: list[ApplicationRow]
    to_schedule: list[ApplicationRow]
    due_soon: list[ApplicationRow]
    overdue: list[ApplicationRow]
    today: list[ApplicationRow]


@dataclass(frozen=True)
class ApplicationDetail:
    row: ApplicationRow
    facility: Facility
    history: list[AuditRecord]
    notices: list[Notice]
    kiosks: list[Kiosk]


@dataclass
class ConsoleQueries:
    uow: Callable[[], UnitOfWork]
    clock: Clock

    async def _officer(self, uow: UnitOfWork, officer_id: str) -> tuple[Officer, Facility]:
        officer = await uow.officers.get(officer_id)
        if officer is None or not officer.active:
            raise NotFound("officer_not_found", "民警账号不存在或已停用", "No such active officer")
        facility = await uow.facilities.get(officer.facility_id)
        assert facility is not None
        return officer, facility

    async def _rows(
        self, uow: UnitOfWork, facility: Facility, applications: list[Application]
    ) -> list[ApplicationRow]:
        calendar = WorkdayCalendar(await uow.calendar.list())
        today = facility.local_date(self.clock.now())
        rows = []
        for application in applications:
            booked = [
                a for a in await uow.appointments.for_application(application.id) if not a.cancelled
            ]
            appointment = booked[-1] if booked else None
            visit = await uow.visits.get_by_appointment(appointment.id) if appointment else None
            left = None
            if application.state in OPEN_STATES:
                due = application.deadline.due
                left = (
                    calendar.working_days_between(today, due)
                    if due >= today
                    else -calendar.working_days_between(due, today) or -1
                )
            rows.append(
                ApplicationRow(
                    application,
                    await uow.detainees.get(application.detainee_id),
                    appointment,
                    visit,
                    left,
                )
            )
        return rows

    async def queues(self, officer_id: str) -> Queues:
        async with self.uow() as uow:
            _officer, facility = await self._officer(uow, officer_id)
            open_or_approved = await uow.applications.list(
                facility.id, states=OPEN_STATES | {ApplicationState.APPROVED}
            )
            scheduled = await uow.applications.list(
                facility.id, states=frozenset({ApplicationState.SCHEDULED})
            )
            rows = await self._rows(uow, facility, open_or_approved)
            booked = await self._rows(uow, facility, scheduled)
        today = facility.local_date(self.clock.now())

        def state(s: ApplicationState) -> list[ApplicationRow]:
            return [r for r in rows if r.application.state is s]

        open_rows = [r for r in rows if r.working_days_left is not None]
        return Queues(
            to_accept=state(ApplicationState.SUBMITTED),
            to_review=state(ApplicationState.ACCEPTED),
            to_schedule=state(ApplicationState.APPROVED),
            due_soon=[
                r for r in open_rows if 0 <= (r.working_days_left or 0) <= DUE_SOON_WORKING_DAYS
            ],
            overdue=[r for r in open_rows if r.overdue],
            today=sorted(
                (
                    r
                    for r in booked
                    if r.appointment and facility.local_date(r.appointment.starts_at) == today
                ),
                key=lambda r: r.appointment.starts_at if r.appointment else datetime.min,
            ),
        )

    async def ledger(
        self,
        officer_id: str,
        *,
        date_from: date | None = None,
        date_to: date | None = None,
        states: frozenset[ApplicationState] | None = None,
    ) -> list[ApplicationRow]:
        """Applications submitted between the two local dates (inclusive), newest first."""
        async with self.uow() as uow:
            _officer, facility = await self._officer(uow, officer_id)
            start = datetime.combine(date_from, time(0), facility.tz) if date_from else None
            end = (
                datetime.combine(date_to + timedelta(days=1), time(0), facility.tz)
                if date_to
                else None
            )
            applications = await uow.applications.list(
                facility.id, states=states, submitted_from=start, submitted_before=end
            )
            rows = await self._rows(uow, facility, applications)
        return list(reversed(rows))

    async def application(self, officer_id: str, application_id: str) -> ApplicationDetail:
        async with self.uow() as uow:
            officer, facility = await self._officer(uow, officer_id)
            application = await uow.applications.get(application_id)
            if application is None or application.facility_id != facility.id:
                raise NotFound("application_not_found", "申请不存在", "No such application")
            [row] = await self._rows(uow, facility, [application])
            history = await uow.audit.for_subject(SubjectType.APPLICATION.value, application.id)
            if row.appointment is not None:
                history += await uow.audit.for_subject(
                    SubjectType.APPOINTMENT.value, row.appointment.id
                )
            if row.visit is not None:
                history += await uow.audit.for_subject(SubjectType.VISIT.value, row.visit.id)
                for credential in await uow.credentials.for_visit(row.visit.id):
                    history += await uow.audit.for_subject(
                        SubjectType.CREDENTIAL.value, credential.id
                    )
            notices = await uow.outbox.for_application(application.id)
            kiosks = await uow.kiosks.list_by_facility(facility.id)
        return ApplicationDetail(
            row, facility, sorted(history, key=lambda r: r.seq), notices, kiosks
        )

    async def facility_of(self, officer_id: str) -> Facility:
        async with self.uow() as uow:
            return (await self._officer(uow, officer_id))[1]

    async def staff(self, officer_id: str) -> tuple[list[Officer], list[Kiosk], list[Detainee]]:
        async with self.uow() as uow:
            _officer, facility = await self._officer(uow, officer_id)
            return (
                await uow.officers.list_by_facility(facility.id),
                await uow.kiosks.list_by_facility(facility.id),
                await uow.detainees.list_by_facility(facility.id),
            )
