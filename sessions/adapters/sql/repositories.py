"""The repositories of ``sessions.repository`` over SQLAlchemy Core, for SQLite and PostgreSQL.

This module owns the mapping between domain objects and rows, and the queries.
There is one set of queries for both databases: no dialect branches here (the
differences live in ``engine.py`` and ``tables.UTCDateTime``).

Semantics follow ``sessions.memory`` (the contract tests run on both):

* objects handed out are freshly built and detached (``events == []``);
* every write that can break a key runs inside a SAVEPOINT, so a ``Conflict``
  leaves the unit of work usable (PostgreSQL would otherwise abort it);
* ``update`` of versioned aggregates is a compare-and-swap on ``version``;
* ``lock_for_booking`` writes the kiosk row, which holds PostgreSQL's row lock
  (SQLite already holds its database write lock from ``BEGIN IMMEDIATE``);
* the audit chain is extended from the head read in the same transaction, and
  the primary key on ``seq`` turns a would-be fork into ``ChainContention``.

It must never commit on its own: only ``SqlUnitOfWork.commit`` ends a
transaction successfully, and leaving the unit of work without it rolls back.
"""

from __future__ import annotations

import builtins
import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, Table, and_, delete, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction
from sqlalchemy.sql import Executable

from ...applications import Application, ApplicationState, Relationship, Visitor, VisitReason
from ...appointments import Appointment, Kiosk
from ...audit import AuditRecord, canonical_json, seal
from ...credentials import VisitCredential
from ...detainees import Detainee
from ...errors import Conflict
from ...events import Event
from ...facilities import (
    Facility,
    FacilityKind,
    FacilityRules,
    OpeningHours,
    QuotaPeriod,
    UnexpectedFacePolicy,
)
from ...notifications import Notice, NoticeKind
from ...officers import Officer, Role
from ...quotas import ExceptionKind, LeaderException
from ...repository import (
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
    UnitOfWorkFactory,
    VisitRepository,
    conflicts,
)
from ...visits import EndReason, Visit, VisitKind, VisitState
from ...workdays import CalendarOverride, Deadline
from .tables import (
    application_exceptions,
    application_visitors,
    applications,
    appointments,
    audit_log,
    calendar_overrides,
    credentials,
    detainees,
    facilities,
    kiosks,
    officers,
    outbox,
    visits,
)

# --- conflicts: the contract's vocabulary lives in sessions.repository -------------------

ConflictFactory = Callable[[], Conflict]
_duplicate = conflicts.duplicate
_missing = conflicts.missing
_stale = conflicts.stale_write
_integrity = conflicts.integrity
_username_taken = conflicts.username_taken
_duplicate_device_token = conflicts.duplicate_device_token
_duplicate_number = conflicts.duplicate_number
_visit_exists = conflicts.visit_exists
_duplicate_token = conflicts.duplicate_token
_chain_contention = conflicts.chain_contention


def _is_unique_violation(exc: IntegrityError) -> bool:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate is not None:
        return str(sqlstate) == "23505"
    return "UNIQUE constraint failed" in str(orig)


def _violated(exc: IntegrityError, table: Table, column: str) -> bool:
    """Whether the unique key on ``table.column`` is the one ``exc`` reports.

    PostgreSQL names the constraint (``uq_officers_username``, or ``pk_audit_log`` when the
    key is the primary key); SQLite names the columns (``officers.username``). The names
    follow ``tables.NAMING_CONVENTION``.
    """
    message = str(exc.orig)
    names = [f"uq_{table.name}_{column}", f"{table.name}.{column}"]
    if [c.name for c in table.primary_key.columns] == [column]:
        names.append(f'"{table.primary_key.name}"')
    return any(name in message for name in names)


class _Repo:
    """Shared plumbing: every repository works on the unit of work's one connection."""

    #: unique column -> the conflict its violation means
    unique: Mapping[str, ConflictFactory] = {}
    table: Table

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def _rows(self, stmt: Executable) -> Sequence[Row[Any]]:
        return (await self.conn.execute(stmt)).all()

    async def _row(self, stmt: Executable) -> Row[Any] | None:
        return (await self.conn.execute(stmt)).first()

    async def _write(
        self, stmt: Executable, params: Sequence[Mapping[str, Any]] | None = None
    ) -> CursorResult[Any]:
        """Run a write in a SAVEPOINT; a broken key becomes a ``Conflict`` and the
        unit of work stays usable."""
        try:
            async with self.conn.begin_nested():
                if params is None:
                    return await self.conn.execute(stmt)
                return await self.conn.execute(stmt, list(params))
        except IntegrityError as exc:
            if not _is_unique_violation(exc):
                raise _integrity() from exc
            for column, conflict in self.unique.items():
                if _violated(exc, self.table, column):
                    raise conflict() from exc
            raise _duplicate() from exc

    async def _insert(self, values: Mapping[str, Any]) -> None:
        await self._write(insert(self.table).values(**values))

    async def _replace(self, key: str, values: Mapping[str, Any]) -> None:
        """UPDATE the row whose ``id`` is ``key``; ``Conflict`` if there is none."""
        result = await self._write(
            update(self.table).where(self.table.c.id == key).values(**values)
        )
        if result.rowcount == 0:
            raise _missing()

    async def _versioned(self, key: str, version: int, values: Mapping[str, Any]) -> None:
        """Compare-and-swap on ``version``; ``Conflict`` if it moved on (or the row is gone)."""
        result = await self._write(
            update(self.table)
            .where(self.table.c.id == key, self.table.c.version == version)
            .values(**values, version=version + 1)
        )
        if result.rowcount == 0:
            raise _stale()


# --- facilities ---------------------------------------------------------------------------


def _facility_values(f: Facility) -> dict[str, Any]:
    r = f.rules
    return {
        "id": f.id,
        "name": f.name,
        "kind": f.kind.value,
        "time_zone": f.time_zone,
        "visits_per_period": r.visits_per_period,
        "period": r.period.value,
        "max_visit_minutes": r.max_visit_minutes,
        "max_people": r.max_people,
        "unexpected_face_policy": r.unexpected_face_policy.value,
        "opening_hours": _hours_text(r.opening_hours),
    }


def _hours_text(hours: OpeningHours) -> str:
    """``as_text()`` when that is exact, else full ISO times (``OpeningHours.parse`` reads both).

    ``as_text`` keeps hours and minutes only, which would turn ``time.max`` (a window running
    to midnight, see ``OpeningHours.contains``) into 23:59 and change what it admits.
    """
    text = hours.as_text()
    if text and OpeningHours.parse(text) == hours:
        return text
    return ",".join(f"{a.isoformat()}-{b.isoformat()}" for a, b in hours.windows)


def _opening_hours(text: str) -> OpeningHours:
    # ``OpeningHours.parse`` refuses "", but ``as_text`` of no windows is "".
    return OpeningHours(()) if not text else OpeningHours.parse(text)


def _facility(row: Row[Any]) -> Facility:
    return Facility(
        id=row.id,
        name=row.name,
        kind=FacilityKind(row.kind),
        time_zone=row.time_zone,
        rules=FacilityRules(
            visits_per_period=row.visits_per_period,
            period=QuotaPeriod(row.period),
            max_visit_minutes=row.max_visit_minutes,
            max_people=row.max_people,
            unexpected_face_policy=UnexpectedFacePolicy(row.unexpected_face_policy),
            opening_hours=_opening_hours(row.opening_hours),
        ),
    )


class SqlFacilities(_Repo, FacilityRepository):
    table = facilities

    async def add(self, facility: Facility) -> None:
        await self._insert(_facility_values(facility))

    async def get(self, facility_id: str) -> Facility | None:
        row = await self._row(select(facilities).where(facilities.c.id == facility_id))
        return None if row is None else _facility(row)

    async def update(self, facility: Facility) -> None:
        await self._replace(facility.id, _facility_values(facility))

    async def list(self) -> list[Facility]:
        rows = await self._rows(select(facilities).order_by(facilities.c.name, facilities.c.id))
        return [_facility(r) for r in rows]


# --- detainees ----------------------------------------------------------------------------

_DETAINEE_FIELDS = (
    "id",
    "facility_id",
    "name",
    "admitted_on",
    "released_on",
    "refuses_video_visits",
    "strict_management",
    "serious_violation",
    "foreign_national",
    "in_detox_treatment",
    "pending_criminal_transfer",
    "photo_ref",
    "face_encoding",
)


def _detainee(row: Row[Any]) -> Detainee:
    values = {name: getattr(row, name) for name in _DETAINEE_FIELDS}
    # PostgreSQL's driver hands back a memoryview for BYTEA; the domain holds bytes.
    if values["face_encoding"] is not None:
        values["face_encoding"] = bytes(values["face_encoding"])
    return Detainee(**values)


class SqlDetainees(_Repo, DetaineeRepository):
    table = detainees

    async def add(self, detainee: Detainee) -> None:
        await self._insert({n: getattr(detainee, n) for n in _DETAINEE_FIELDS})

    async def get(self, detainee_id: str) -> Detainee | None:
        row = await self._row(select(detainees).where(detainees.c.id == detainee_id))
        return None if row is None else _detainee(row)

    async def update(self, detainee: Detainee) -> None:
        await self._replace(detainee.id, {n: getattr(detainee, n) for n in _DETAINEE_FIELDS})

    async def list_by_facility(self, facility_id: str) -> list[Detainee]:
        rows = await self._rows(
            select(detainees)
            .where(detainees.c.facility_id == facility_id)
            .order_by(detainees.c.name, detainees.c.id)
        )
        return [_detainee(r) for r in rows]

    async def find_by_name(self, facility_id: str, name: str) -> list[Detainee]:
        rows = await self._rows(
            select(detainees)
            .where(detainees.c.facility_id == facility_id, detainees.c.name == name)
            .order_by(detainees.c.id)
        )
        return [_detainee(r) for r in rows]


# --- officers -----------------------------------------------------------------------------


def _roles_text(roles: frozenset[Role]) -> str:
    return ",".join(sorted(role.value for role in roles))


def _roles(text: str) -> frozenset[Role]:
    return frozenset(Role(part) for part in text.split(",") if part)


def _officer_values(o: Officer) -> dict[str, Any]:
    return {
        "id": o.id,
        "facility_id": o.facility_id,
        "username": o.username,
        "display_name": o.display_name,
        "password_hash": o.password_hash,
        "roles": _roles_text(o.roles),
        "active": o.active,
    }


def _officer(row: Row[Any]) -> Officer:
    return Officer(
        id=row.id,
        facility_id=row.facility_id,
        username=row.username,
        display_name=row.display_name,
        password_hash=row.password_hash,
        roles=_roles(row.roles),
        active=row.active,
    )


class SqlOfficers(_Repo, OfficerRepository):
    table = officers
    unique = {"username": _username_taken}

    async def add(self, officer: Officer) -> None:
        await self._insert(_officer_values(officer))

    async def get(self, officer_id: str) -> Officer | None:
        row = await self._row(select(officers).where(officers.c.id == officer_id))
        return None if row is None else _officer(row)

    async def get_by_username(self, username: str) -> Officer | None:
        row = await self._row(select(officers).where(officers.c.username == username))
        return None if row is None else _officer(row)

    async def update(self, officer: Officer) -> None:
        await self._replace(officer.id, _officer_values(officer))

    async def list_by_facility(self, facility_id: str) -> list[Officer]:
        rows = await self._rows(
            select(officers)
            .where(officers.c.facility_id == facility_id)
            .order_by(officers.c.username)
        )
        return [_officer(r) for r in rows]


# --- kiosks -------------------------------------------------------------------------------


def _kiosk_values(k: Kiosk) -> dict[str, Any]:
    return {
        "id": k.id,
        "facility_id": k.facility_id,
        "name": k.name,
        "device_token_hash": k.device_token_hash,
        "active": k.active,
    }


def _kiosk(row: Row[Any]) -> Kiosk:
    return Kiosk(
        id=row.id,
        facility_id=row.facility_id,
        name=row.name,
        device_token_hash=row.device_token_hash,
        active=row.active,
    )


class SqlKiosks(_Repo, KioskRepository):
    table = kiosks
    unique = {"device_token_hash": _duplicate_device_token}

    async def add(self, kiosk: Kiosk) -> None:
        await self._insert({**_kiosk_values(kiosk), "booking_lock": 0})

    async def get(self, kiosk_id: str) -> Kiosk | None:
        row = await self._row(select(kiosks).where(kiosks.c.id == kiosk_id))
        return None if row is None else _kiosk(row)

    async def get_by_token_hash(self, token_hash: str) -> Kiosk | None:
        row = await self._row(select(kiosks).where(kiosks.c.device_token_hash == token_hash))
        return None if row is None else _kiosk(row)

    async def update(self, kiosk: Kiosk) -> None:
        await self._replace(kiosk.id, _kiosk_values(kiosk))

    async def list_by_facility(self, facility_id: str) -> list[Kiosk]:
        rows = await self._rows(
            select(kiosks)
            .where(kiosks.c.facility_id == facility_id)
            .order_by(kiosks.c.name, kiosks.c.id)
        )
        return [_kiosk(r) for r in rows]

    async def lock_for_booking(self, kiosk_id: str) -> None:
        # A real write: PostgreSQL keeps the row lock until the transaction ends, so a
        # second booking on this kiosk waits here and then sees the first one's insert.
        # No SAVEPOINT: it cannot break a key, and releasing a savepoint keeps the lock anyway.
        await self.conn.execute(
            update(kiosks)
            .where(kiosks.c.id == kiosk_id)
            .values(booking_lock=kiosks.c.booking_lock + 1)
        )


# --- applications -------------------------------------------------------------------------


def _years_text(years: tuple[int, ...]) -> str:
    return ",".join(str(y) for y in years)


def _years(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def _application_values(a: Application) -> dict[str, Any]:
    return {
        "id": a.id,
        "number": a.number,
        "facility_id": a.facility_id,
        "detainee_id": a.detainee_id,
        "reason": a.reason.value,
        "reason_detail": a.reason_detail,
        "submitted_at": a.submitted_at,
        "deadline_due": a.deadline.due,
        "deadline_unconfirmed_years": _years_text(a.deadline.unconfirmed_years),
        "state": a.state.value,
        "decided_by": a.decided_by,
        "decided_at": a.decided_at,
        "decision_reason": a.decision_reason,
    }


def _visitor_values(application_id: str, position: int, v: Visitor) -> dict[str, Any]:
    return {
        "application_id": application_id,
        "position": position,
        "name": v.name,
        "id_number": v.id_number,
        "phone": v.phone,
        "relationship": v.relationship.value,
        "id_photo_ref": v.id_photo_ref,
        "face_encoding": v.face_encoding,
    }


def _exception_values(application_id: str, position: int, e: LeaderException) -> dict[str, Any]:
    return {
        "application_id": application_id,
        "position": position,
        "kind": e.kind.value,
        "granted_by": e.granted_by,
        "reason": e.reason,
        "granted_at": e.granted_at,
        "extra_minutes": e.extra_minutes,
        "extra_people": e.extra_people,
    }


def _visitor(row: Row[Any]) -> Visitor:
    return Visitor(
        name=row.name,
        id_number=row.id_number,
        phone=row.phone,
        relationship=Relationship(row.relationship),
        id_photo_ref=row.id_photo_ref,
        face_encoding=None if row.face_encoding is None else bytes(row.face_encoding),
    )


def _leader_exception(row: Row[Any]) -> LeaderException:
    return LeaderException(
        kind=ExceptionKind(row.kind),
        granted_by=row.granted_by,
        reason=row.reason,
        granted_at=row.granted_at,
        extra_minutes=row.extra_minutes,
        extra_people=row.extra_people,
    )


class SqlApplications(_Repo, ApplicationRepository):
    table = applications
    unique = {"number": _duplicate_number}

    async def add(self, application: Application) -> None:
        await self._insert({**_application_values(application), "version": application.version})
        await self._write_children(application)

    async def get(self, application_id: str) -> Application | None:
        found = await self._load(select(applications).where(applications.c.id == application_id))
        return found[0] if found else None

    async def get_by_number(self, number: str) -> Application | None:
        found = await self._load(select(applications).where(applications.c.number == number))
        return found[0] if found else None

    async def update(self, application: Application) -> None:
        values = _application_values(application)
        await self._versioned(application.id, application.version, values)
        for child in (application_visitors, application_exceptions):
            await self.conn.execute(delete(child).where(child.c.application_id == application.id))
        await self._write_children(application)
        application.version += 1

    async def list(
        self,
        facility_id: str,
        *,
        states: frozenset[ApplicationState] | None = None,
        submitted_from: datetime | None = None,
        submitted_before: datetime | None = None,
    ) -> list[Application]:
        c = applications.c
        conditions = [c.facility_id == facility_id]
        if states is not None:
            conditions.append(c.state.in_(sorted(s.value for s in states)))
        if submitted_from is not None:
            conditions.append(c.submitted_at >= submitted_from)
        if submitted_before is not None:
            conditions.append(c.submitted_at < submitted_before)
        return await self._load(
            select(applications).where(and_(*conditions)).order_by(c.submitted_at, c.number)
        )

    async def _write_children(self, application: Application) -> None:
        if application.visitors:
            await self._write(
                insert(application_visitors),
                [_visitor_values(application.id, i, v) for i, v in enumerate(application.visitors)],
            )
        if application.exceptions:
            await self._write(
                insert(application_exceptions),
                [
                    _exception_values(application.id, i, e)
                    for i, e in enumerate(application.exceptions)
                ],
            )

    async def _load(self, stmt: Executable) -> builtins.list[Application]:
        rows = await self._rows(stmt)
        if not rows:
            return []
        ids = [row.id for row in rows]
        people: dict[str, list[Visitor]] = defaultdict(list)
        for row in await self._rows(
            select(application_visitors)
            .where(application_visitors.c.application_id.in_(ids))
            .order_by(application_visitors.c.application_id, application_visitors.c.position)
        ):
            people[row.application_id].append(_visitor(row))
        granted: dict[str, list[LeaderException]] = defaultdict(list)
        for row in await self._rows(
            select(application_exceptions)
            .where(application_exceptions.c.application_id.in_(ids))
            .order_by(application_exceptions.c.application_id, application_exceptions.c.position)
        ):
            granted[row.application_id].append(_leader_exception(row))
        return [
            Application(
                id=row.id,
                number=row.number,
                facility_id=row.facility_id,
                detainee_id=row.detainee_id,
                visitors=people[row.id],
                reason=VisitReason(row.reason),
                reason_detail=row.reason_detail,
                submitted_at=row.submitted_at,
                deadline=Deadline(row.deadline_due, _years(row.deadline_unconfirmed_years)),
                state=ApplicationState(row.state),
                decided_by=row.decided_by,
                decided_at=row.decided_at,
                decision_reason=row.decision_reason,
                exceptions=granted[row.id],
                version=row.version,
            )
            for row in rows
        ]


# --- appointments -------------------------------------------------------------------------

_APPOINTMENT_FIELDS = (
    "id",
    "facility_id",
    "kiosk_id",
    "application_id",
    "detainee_id",
    "starts_at",
    "ends_at",
    "booked_by",
    "cancelled",
)


def _appointment(row: Row[Any]) -> Appointment:
    return Appointment(**{name: getattr(row, name) for name in _APPOINTMENT_FIELDS})


class SqlAppointments(_Repo, AppointmentRepository):
    table = appointments

    async def add(self, appointment: Appointment) -> None:
        await self._insert({n: getattr(appointment, n) for n in _APPOINTMENT_FIELDS})

    async def get(self, appointment_id: str) -> Appointment | None:
        row = await self._row(select(appointments).where(appointments.c.id == appointment_id))
        return None if row is None else _appointment(row)

    async def update(self, appointment: Appointment) -> None:
        values = {n: getattr(appointment, n) for n in _APPOINTMENT_FIELDS}
        await self._replace(appointment.id, values)

    async def overlapping(
        self, kiosk_id: str, starts_at: datetime, ends_at: datetime
    ) -> list[Appointment]:
        c = appointments.c
        rows = await self._rows(
            select(appointments)
            .where(
                c.kiosk_id == kiosk_id,
                c.cancelled.is_(False),
                c.starts_at < ends_at,
                c.ends_at > starts_at,
            )
            .order_by(c.starts_at, c.id)
        )
        return [_appointment(r) for r in rows]

    async def for_detainee(self, detainee_id: str) -> list[Appointment]:
        c = appointments.c
        rows = await self._rows(
            select(appointments)
            .where(c.detainee_id == detainee_id, c.cancelled.is_(False))
            .order_by(c.starts_at, c.id)
        )
        return [_appointment(r) for r in rows]

    async def for_application(self, application_id: str) -> list[Appointment]:
        c = appointments.c
        rows = await self._rows(
            select(appointments)
            .where(c.application_id == application_id)
            .order_by(c.starts_at, c.id)
        )
        return [_appointment(r) for r in rows]


# --- visits -------------------------------------------------------------------------------


def _visit_values(v: Visit) -> dict[str, Any]:
    return {
        "id": v.id,
        "facility_id": v.facility_id,
        "appointment_id": v.appointment_id,
        "application_id": v.application_id,
        "kiosk_id": v.kiosk_id,
        "kind": v.kind.value,
        "limit_minutes": v.limit_minutes,
        "state": v.state.value,
        "live_at": v.live_at,
        "ended_at": v.ended_at,
        "end_reason": None if v.end_reason is None else v.end_reason.value,
        "end_note": v.end_note,
        "ended_by": v.ended_by,
    }


def _visit(row: Row[Any]) -> Visit:
    return Visit(
        id=row.id,
        facility_id=row.facility_id,
        appointment_id=row.appointment_id,
        application_id=row.application_id,
        kiosk_id=row.kiosk_id,
        kind=VisitKind(row.kind),
        limit_minutes=row.limit_minutes,
        state=VisitState(row.state),
        live_at=row.live_at,
        ended_at=row.ended_at,
        end_reason=None if row.end_reason is None else EndReason(row.end_reason),
        end_note=row.end_note,
        ended_by=row.ended_by,
        version=row.version,
    )


class SqlVisits(_Repo, VisitRepository):
    table = visits
    unique = {"appointment_id": _visit_exists}

    async def add(self, visit: Visit) -> None:
        await self._insert({**_visit_values(visit), "version": visit.version})

    async def get(self, visit_id: str) -> Visit | None:
        row = await self._row(select(visits).where(visits.c.id == visit_id))
        return None if row is None else _visit(row)

    async def get_by_appointment(self, appointment_id: str) -> Visit | None:
        row = await self._row(select(visits).where(visits.c.appointment_id == appointment_id))
        return None if row is None else _visit(row)

    async def update(self, visit: Visit) -> None:
        await self._versioned(visit.id, visit.version, _visit_values(visit))
        visit.version += 1

    async def list_by_state(self, facility_id: str, states: frozenset[VisitState]) -> list[Visit]:
        rows = await self._rows(
            select(visits)
            .where(
                visits.c.facility_id == facility_id,
                visits.c.state.in_(sorted(s.value for s in states)),
            )
            .order_by(visits.c.id)
        )
        return [_visit(r) for r in rows]


# --- credentials --------------------------------------------------------------------------

_CREDENTIAL_FIELDS = (
    "id",
    "visit_id",
    "facility_id",
    "token_hash",
    "code_hash",
    "valid_from",
    "valid_until",
    "consecutive_failures",
    "total_failures",
    "locked_until",
    "first_used_at",
    "revoked_at",
    "revoked_reason",
    "sealed_secrets",
)


def _credential(row: Row[Any]) -> VisitCredential:
    return VisitCredential(**{name: getattr(row, name) for name in _CREDENTIAL_FIELDS})


class SqlCredentials(_Repo, CredentialRepository):
    table = credentials
    unique = {"token_hash": _duplicate_token}

    async def add(self, credential: VisitCredential) -> None:
        await self._insert({n: getattr(credential, n) for n in _CREDENTIAL_FIELDS})

    async def get_by_token_hash(self, token_hash: str) -> VisitCredential | None:
        row = await self._row(select(credentials).where(credentials.c.token_hash == token_hash))
        return None if row is None else _credential(row)

    async def update(self, credential: VisitCredential) -> None:
        values = {n: getattr(credential, n) for n in _CREDENTIAL_FIELDS}
        await self._replace(credential.id, values)

    async def for_visit(self, visit_id: str) -> list[VisitCredential]:
        rows = await self._rows(
            select(credentials)
            .where(credentials.c.visit_id == visit_id)
            .order_by(credentials.c.valid_from, credentials.c.id)
        )
        return [_credential(r) for r in rows]


# --- audit --------------------------------------------------------------------------------


def _audit_values(r: AuditRecord) -> dict[str, Any]:
    return {
        "seq": r.seq,
        "at": r.at,
        "facility_id": r.facility_id,
        "actor": r.actor,
        "event": r.event,
        "subject_type": r.subject_type,
        "subject_id": r.subject_id,
        "data": canonical_json(r.data),
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    }


def _audit_record(row: Row[Any]) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        at=row.at,
        facility_id=row.facility_id,
        actor=row.actor,
        event=row.event,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        data=json.loads(row.data),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


class SqlAuditLog(_Repo, AuditLog):
    table = audit_log
    unique = {"seq": _chain_contention}

    async def append(self, events: list[Event]) -> list[AuditRecord]:
        previous = await self.head()
        sealed: list[AuditRecord] = []
        for event in events:
            previous = seal(event, previous)
            sealed.append(previous)
        if sealed:
            # Primary key on seq: if another transaction took these numbers first, this
            # fails (on PostgreSQL after waiting for it to commit) instead of forking.
            await self._write(insert(audit_log), [_audit_values(r) for r in sealed])
        return sealed

    async def head(self) -> AuditRecord | None:
        row = await self._row(select(audit_log).order_by(audit_log.c.seq.desc()).limit(1))
        return None if row is None else _audit_record(row)

    async def records(self, *, after_seq: int = 0, limit: int | None = None) -> list[AuditRecord]:
        stmt = select(audit_log).where(audit_log.c.seq > after_seq).order_by(audit_log.c.seq)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [_audit_record(r) for r in await self._rows(stmt)]

    async def for_subject(self, subject_type: str, subject_id: str) -> list[AuditRecord]:
        rows = await self._rows(
            select(audit_log)
            .where(audit_log.c.subject_type == subject_type, audit_log.c.subject_id == subject_id)
            .order_by(audit_log.c.seq)
        )
        return [_audit_record(r) for r in rows]


# --- calendar -----------------------------------------------------------------------------


class SqlCalendar(_Repo, CalendarRepository):
    table = calendar_overrides

    async def put(self, override: CalendarOverride) -> None:
        await self.remove(override.day)
        await self._insert(
            {"day": override.day, "is_workday": override.is_workday, "note": override.note}
        )

    async def remove(self, day: date) -> None:
        await self.conn.execute(delete(calendar_overrides).where(calendar_overrides.c.day == day))

    async def list(self, year: int | None = None) -> list[CalendarOverride]:
        c = calendar_overrides.c
        stmt = select(calendar_overrides).order_by(c.day)
        if year is not None:
            stmt = stmt.where(c.day >= date(year, 1, 1), c.day <= date(year, 12, 31))
        return [
            CalendarOverride(day=r.day, is_workday=r.is_workday, note=r.note)
            for r in await self._rows(stmt)
        ]


# --- outbox -------------------------------------------------------------------------------

_NOTICE_FIELDS = (
    "id",
    "application_id",
    "phone",
    "created_at",
    "attempts",
    "next_attempt_at",
    "sent_at",
    "failed_at",
    "last_error",
)


def _notice(row: Row[Any]) -> Notice:
    return Notice(kind=NoticeKind(row.kind), **{n: getattr(row, n) for n in _NOTICE_FIELDS})


def _notice_values(notice: Notice) -> dict[str, Any]:
    return {"kind": notice.kind.value, **{n: getattr(notice, n) for n in _NOTICE_FIELDS}}


class SqlOutbox(_Repo, OutboxRepository):
    table = outbox

    async def add(self, notice: Notice) -> None:
        await self._insert(_notice_values(notice))

    async def update(self, notice: Notice) -> None:
        await self._replace(notice.id, _notice_values(notice))

    async def due(self, now: datetime, limit: int) -> list[Notice]:
        c = outbox.c
        rows = await self._rows(
            select(outbox)
            .where(
                c.sent_at.is_(None),
                c.failed_at.is_(None),
                (c.next_attempt_at.is_(None)) | (c.next_attempt_at <= now),
            )
            .order_by(c.created_at, c.id)
            .limit(limit)
        )
        return [_notice(r) for r in rows]

    async def for_application(self, application_id: str) -> list[Notice]:
        c = outbox.c
        rows = await self._rows(
            select(outbox).where(c.application_id == application_id).order_by(c.created_at, c.id)
        )
        return [_notice(r) for r in rows]


# --- unit of work -------------------------------------------------------------------------


class SqlUnitOfWork(UnitOfWork):
    """One connection and one transaction, from ``async with`` to ``commit`` or exit.

    ``commit`` and ``rollback`` both release the connection, whatever happens; a
    second call of either (or ``rollback`` after ``commit``) does nothing.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None

    async def _begin(self) -> None:
        if self._conn is not None:
            raise RuntimeError("this unit of work has already begun")
        conn = await self.engine.connect()
        try:
            self._tx = await conn.begin()
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self.facilities = SqlFacilities(conn)
        self.detainees = SqlDetainees(conn)
        self.officers = SqlOfficers(conn)
        self.kiosks = SqlKiosks(conn)
        self.applications = SqlApplications(conn)
        self.appointments = SqlAppointments(conn)
        self.visits = SqlVisits(conn)
        self.credentials = SqlCredentials(conn)
        self.audit = SqlAuditLog(conn)
        self.calendar = SqlCalendar(conn)
        self.outbox = SqlOutbox(conn)

    async def commit(self) -> None:
        if self._conn is None or self._tx is None:
            raise RuntimeError("commit outside a unit of work")
        tx = self._tx
        try:
            await tx.commit()
        finally:
            await self._release()

    async def rollback(self) -> None:
        if self._conn is None:
            return
        tx = self._tx
        try:
            if tx is not None and tx.is_active:
                await tx.rollback()
        finally:
            await self._release()

    async def _release(self) -> None:
        conn, self._conn, self._tx = self._conn, None, None
        if conn is not None:
            await conn.close()


class SqlUnitOfWorkFactory(UnitOfWorkFactory):
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)
