"""In-memory repositories: the fake the unit tests run the service layer on.

It obeys the same contract as the SQL adapter (the contract tests run on both):
detached copies in and out, all-or-nothing commit, version checks, no double
booking, an audit chain that never forks.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, TypeVar

from .applications import Application, ApplicationState
from .appointments import Appointment, Kiosk
from .audit import AuditRecord, seal
from .credentials import VisitCredential
from .detainees import Detainee
from .events import Event
from .facilities import Facility
from .notifications import Notice
from .officers import Officer
from .repository import (
    ApplicationRepository,
    AppointmentRepository,
    AuditLog,
    CalendarRepository,
    CredentialRepository,
    DetaineeRepository,
    FacilityRepository,
    KioskRepository,
    OfficerRepository,
    OutboxRepository,
    UnitOfWork,
    VisitRepository,
    conflicts,
)
from .visits import Visit, VisitState
from .workdays import CalendarOverride

T = TypeVar("T")


def _detached(obj: T) -> T:
    clone = copy.deepcopy(obj)
    if hasattr(clone, "events"):
        clone.events = []  # type: ignore[attr-defined]
    return clone


@dataclass
class MemoryStore:
    tables: dict[str, dict[Any, Any]] = field(
        default_factory=lambda: {
            name: {}
            for name in (
                "facilities",
                "detainees",
                "officers",
                "kiosks",
                "applications",
                "appointments",
                "visits",
                "credentials",
                "calendar",
                "outbox",
            )
        }
    )
    audit: list[AuditRecord] = field(default_factory=list)
    #: One writer at a time, like SQLite's write lock.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class _Table:
    def __init__(self, rows: dict[Any, Any]) -> None:
        self.rows = rows

    def put_new(self, key: Any, obj: Any) -> None:
        if key in self.rows:
            raise conflicts.duplicate()
        self.rows[key] = _detached(obj)

    def replace(self, key: Any, obj: Any) -> None:
        if key not in self.rows:
            raise conflicts.missing()
        self.rows[key] = _detached(obj)

    def get(self, key: Any) -> Any:
        found = self.rows.get(key)
        return None if found is None else _detached(found)

    def where(self, pred: Any) -> list[Any]:
        return [_detached(o) for o in self.rows.values() if pred(o)]


def _versioned_update(table: _Table, obj: Any) -> None:
    stored = table.rows.get(obj.id)
    if stored is None or stored.version != obj.version:
        raise conflicts.stale_write()
    obj.version += 1
    table.rows[obj.id] = _detached(obj)


class MemoryFacilities(FacilityRepository):
    def __init__(self, t: _Table) -> None:
        self.t = t

    async def add(self, facility: Facility) -> None:
        self.t.put_new(facility.id, facility)

    async def get(self, facility_id: str) -> Facility | None:
        return self.t.get(facility_id)  # type: ignore[no-any-return]

    async def update(self, facility: Facility) -> None:
        self.t.replace(facility.id, facility)

    async def list(self) -> list[Facility]:
        return sorted(self.t.where(lambda o: True), key=lambda f: f.name)


class MemoryDetainees(DetaineeRepository):
    def __init__(self, t: _Table) -> None:
        self.t = t

    async def add(self, detainee: Detainee) -> None:
        self.t.put_new(detainee.id, detainee)

    async def get(self, detainee_id: str) -> Detainee | None:
        return self.t.get(detainee_id)  # type: ignore[no-any-return]

    async def update(self, detainee: Detainee) -> None:
        self.t.replace(detainee.id, detainee)

    async def list_by_facility(self, facility_id: str) -> list[Detainee]:
        return sorted(self.t.where(lambda d: d.facility_id == facility_id), key=lambda d: d.name)

    async def find_by_name(self, facility_id: str, name: str) -> list[Detainee]:
        return self.t.where(lambda d: d.facility_id == facility_id and d.name == name)


class MemoryOfficers(OfficerRepository):
    def __init__(self, t: _Table) -> None:
        self.t = t

    async def add(self, officer: Officer) -> None:
        if any(o.username == officer.username for o in self.t.rows.values()):
            raise conflicts.username_taken()
        self.t.put_new(officer.id, officer)

    async def get(self, officer_id: str) -> Officer | None:
        return self.t.get(officer_id)  # type: ignore[no-any-return]

    async def get_by_username(self, username: str) -> Officer | None:
        found = self.t.where(lambda o: o.username == username)
        return found[0] if found else None

    async def update(self, officer: Officer) -> None:
        self.t.replace(officer.id, officer)

    async def list_by_facility(self, facility_id: str) -> list[Officer]:
        return sorted(
            self.t.where(lambda o: o.facility_id == facility_id), key=lambda o: o.username
        )


class MemoryKiosks(KioskRepository):
    def __init__(self, t: _Table) -> None:
        self.t = t

    async def add(self, kiosk: Kiosk) -> None:
        # The token hash identifies the kiosk (get_by_token_hash): it must be unique.
        if any(k.device_token_hash == kiosk.device_token_hash for k in self.t.rows.values()):
            raise conflicts.duplicate_device_token()
        self.t.put_new(kiosk.id, kiosk)

    async def get(self, kiosk_id: str) -> Kiosk | None:
        return self.t.get(kiosk_id)  # type: ignore[no-any-return]

    async def get_by_token_hash(self, token_hash: str) -> Kiosk | None:
        found = self.t.where(lambda k: k.device_token_hash == token_hash)
        return found[0] if found else None

    async def update(self, kiosk: Kiosk) -> None:
        self.t.replace(kiosk.id, kiosk)

    async def list_by_facility(self, facility_id: str) -> list[Kiosk]:
        return sorted(self.t.where(lambda k: k.facility_id == facility_id), key=lambda k: k.name)

    async def lock_for_booking(self, kiosk_id: str) -> None:
        # The memory unit of work already holds the store's single writer lock.
        return None


class MemoryApplications(ApplicationRepository):
    def __init__(self, t: _Table) -> None:
        self.t = t

    async def add(self, application: Application) -> None:
        if any(a.number == application.number for a in self.t.rows.values()):
            raise conflicts.duplicate_number()
        self.t.put_new(application.id, application)

    async def get(self, application_id: str) -> Application | None:
        return self.t.get(application_id)  # type: ignore[no-any-return]

    async def get_by_number(self, number: str) -> Application | None:
        found = self.t.where(lambda a: a.number == number)
        return found[0] if found else None

    async def update(self, application: Application) -> None:
        _versioned_update(self.t, application)

    async def list(
        self,
        facility_id: str,
        *,
        states: frozenset[ApplicationState] | None = None,
        submitted_from: datetime | None = None,
        submitted_before: datetime | None = None,
    ) -> list[Application]:
        def keep(a: Application) -> bool:
            return (
                a.facility_id == facility_id
                and (states is None or a.state in states)
                and (submitted_from is None or a.submitted_at >= submitted_from)
                and (submitted_before is None or a.submitted_at < submitted_before)
            )

        return sorted(self.t.where(keep), key=lambda a: (a.submitted_at, a.number))


class MemoryAppointments(AppointmentRepository):
    def __init__(self, t: _Table) -> None:
        self.t = t

    async def add(self, appointment: Appointment) -> None:
        self.t.put_new(appointment.id, appointment)

    async def get(self, appointment_id: str) -> Appointment | None:
        return self.t.get(appointment_id)  # type: ignore[no-any-return]

    async def update(self, appointment: Appointment) -> None:
        self.t.replace(appointment.id, appointment)

    async def overlapping(
        self, kiosk_id: str, starts_at: datetime, ends_at: datetime
    ) -> list[Appointment]:
        return sorted(
            self.t.where(
                lambda a: (
                    a.kiosk_id == kiosk_id
                    and not a.cancelled
                    and a.starts_at < ends_at
                    and starts_at < a.ends_at
                )
            ),
            key=lambda a: a.starts_at,
        )

    async def for_application(self, application_id: str) -> list[Appointment]:
        return sorted(
            self.t.where(lambda a: a.application_id == application_id), key=lambda a: a.starts_at
        )

    async def for_detainee(self, detainee_id: str) -> list[Appointment]:
        return sorted(
            self.t.where(lambda a: a.detainee_id == detainee_id and not a.cancelled),
            key=lambda a: a.starts_at,
        )


class MemoryVisits(VisitRepository):
    def __init__(self, t: _Table) -> None:
        self.t = t

    async def add(self, visit: Visit) -> None:
        if any(v.appointment_id == visit.appointment_id for v in self.t.rows.values()):
            raise conflicts.visit_exists()
        self.t.put_new(visit.id, visit)

    async def get(self, visit_id: str) -> Visit | None:
        return self.t.get(visit_id)  # type: ignore[no-any-return]

    async def get_by_appointment(self, appointment_id: str) -> Visit | None:
        found = self.t.where(lambda v: v.appointment_id == appointment_id)
        return found[0] if found else None

    async def update(self, visit: Visit) -> None:
        _versioned_update(self.t, visit)

    async def list_by_state(self, facility_id: str, states: frozenset[VisitState]) -> list[Visit]:
        return sorted(
            self.t.where(lambda v: v.facility_id == facility_id and v.state in states),
            key=lambda v: v.id,
        )


class MemoryCredentials(CredentialRepository):
    def __init__(self, t: _Table) -> None:
        self.t = t

    async def add(self, credential: VisitCredential) -> None:
        if any(c.token_hash == credential.token_hash for c in self.t.rows.values()):
            raise conflicts.duplicate_token()
        self.t.put_new(credential.id, credential)

    async def get_by_token_hash(self, token_hash: str) -> VisitCredential | None:
        found = self.t.where(lambda c: c.token_hash == token_hash)
        return found[0] if found else None

    async def update(self, credential: VisitCredential) -> None:
        self.t.replace(credential.id, credential)

    async def for_visit(self, visit_id: str) -> list[VisitCredential]:
        return sorted(self.t.where(lambda c: c.visit_id == visit_id), key=lambda c: c.valid_from)


class MemoryAudit(AuditLog):
    def __init__(self, records: list[AuditRecord]) -> None:
        self.records_ = records

    async def append(self, events: list[Event]) -> list[AuditRecord]:
        sealed = []
        for event in events:
            record = seal(event, self.records_[-1] if self.records_ else None)
            self.records_.append(record)
            sealed.append(record)
        return sealed

    async def head(self) -> AuditRecord | None:
        return self.records_[-1] if self.records_ else None

    async def records(self, *, after_seq: int = 0, limit: int | None = None) -> list[AuditRecord]:
        found = [r for r in self.records_ if r.seq > after_seq]
        return found if limit is None else found[:limit]

    async def for_subject(self, subject_type: str, subject_id: str) -> list[AuditRecord]:
        return [
            r for r in self.records_ if (r.subject_type, r.subject_id) == (subject_type, subject_id)
        ]


class MemoryCalendar(CalendarRepository):
    def __init__(self, t: _Table) -> None:
        self.t = t

    async def put(self, override: CalendarOverride) -> None:
        self.t.rows[override.day] = override

    async def remove(self, day: date) -> None:
        self.t.rows.pop(day, None)

    async def list(self, year: int | None = None) -> list[CalendarOverride]:
        return sorted(
            self.t.where(lambda o: year is None or o.day.year == year), key=lambda o: o.day
        )


class MemoryOutbox(OutboxRepository):
    def __init__(self, t: _Table) -> None:
        self.t = t

    async def add(self, notice: Notice) -> None:
        self.t.put_new(notice.id, notice)

    async def update(self, notice: Notice) -> None:
        self.t.replace(notice.id, notice)

    async def due(self, now: datetime, limit: int) -> list[Notice]:
        found = sorted(self.t.where(lambda n: n.due(now)), key=lambda n: (n.created_at, n.id))
        return found[:limit]

    async def for_application(self, application_id: str) -> list[Notice]:
        return sorted(
            self.t.where(lambda n: n.application_id == application_id), key=lambda n: n.created_at
        )


class MemoryUnitOfWork(UnitOfWork):
    """Works on a private copy of the store; commit swaps the copy in."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self._working: MemoryStore | None = None

    async def _begin(self) -> None:
        await self.store.lock.acquire()
        self._working = replace(
            self.store, tables=copy.deepcopy(self.store.tables), audit=list(self.store.audit)
        )
        t = self._working.tables
        self.facilities = MemoryFacilities(_Table(t["facilities"]))
        self.detainees = MemoryDetainees(_Table(t["detainees"]))
        self.officers = MemoryOfficers(_Table(t["officers"]))
        self.kiosks = MemoryKiosks(_Table(t["kiosks"]))
        self.applications = MemoryApplications(_Table(t["applications"]))
        self.appointments = MemoryAppointments(_Table(t["appointments"]))
        self.visits = MemoryVisits(_Table(t["visits"]))
        self.credentials = MemoryCredentials(_Table(t["credentials"]))
        self.audit = MemoryAudit(self._working.audit)
        self.calendar = MemoryCalendar(_Table(t["calendar"]))
        self.outbox = MemoryOutbox(_Table(t["outbox"]))

    async def commit(self) -> None:
        if self._working is None:
            raise RuntimeError("commit outside a unit of work")
        self.store.tables = self._working.tables
        self.store.audit = self._working.audit
        self._release()

    async def rollback(self) -> None:
        self._release()

    def _release(self) -> None:
        if self._working is not None:
            self._working = None
            self.store.lock.release()


class MemoryUnitOfWorkFactory:
    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = store or MemoryStore()

    def __call__(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self.store)
