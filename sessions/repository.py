"""Repository and unit-of-work interfaces (ports) of the domain.

Adapters implement them: ``sessions.memory`` for unit tests, and
``sessions.adapters.sql`` for SQLite and PostgreSQL. The same contract tests
(tests/integration/test_repository_contract.py) run against every one.

Repositories hand out detached domain objects; nothing is tracked. A change is
saved by calling ``update`` inside a unit of work, and nothing is written
unless ``commit`` is called: leaving the ``async with`` block without it rolls
back. Aggregates that several processes may touch at once (applications,
visits) carry a ``version``; ``update`` raises ``Conflict`` if someone else
saved first.
"""

from __future__ import annotations

import abc
from datetime import date, datetime
from types import TracebackType
from typing import Self

from .applications import Application, ApplicationState
from .appointments import Appointment, Kiosk
from .audit import AuditRecord
from .credentials import VisitCredential
from .detainees import Detainee
from .errors import ChainContention, Conflict
from .events import Event
from .facilities import Facility
from .notifications import Notice
from .officers import Officer
from .visits import Visit, VisitState
from .workdays import CalendarOverride


class FacilityRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, facility: Facility) -> None: ...
    @abc.abstractmethod
    async def get(self, facility_id: str) -> Facility | None: ...
    @abc.abstractmethod
    async def update(self, facility: Facility) -> None: ...
    @abc.abstractmethod
    async def list(self) -> list[Facility]: ...


class DetaineeRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, detainee: Detainee) -> None: ...
    @abc.abstractmethod
    async def get(self, detainee_id: str) -> Detainee | None: ...
    @abc.abstractmethod
    async def update(self, detainee: Detainee) -> None: ...
    @abc.abstractmethod
    async def list_by_facility(self, facility_id: str) -> list[Detainee]: ...
    @abc.abstractmethod
    async def find_by_name(self, facility_id: str, name: str) -> list[Detainee]: ...


class OfficerRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, officer: Officer) -> None:
        """Raises ``Conflict`` if the username is taken."""

    @abc.abstractmethod
    async def get(self, officer_id: str) -> Officer | None: ...
    @abc.abstractmethod
    async def get_by_username(self, username: str) -> Officer | None: ...
    @abc.abstractmethod
    async def update(self, officer: Officer) -> None: ...
    @abc.abstractmethod
    async def list_by_facility(self, facility_id: str) -> list[Officer]: ...


class KioskRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, kiosk: Kiosk) -> None: ...
    @abc.abstractmethod
    async def get(self, kiosk_id: str) -> Kiosk | None: ...
    @abc.abstractmethod
    async def get_by_token_hash(self, token_hash: str) -> Kiosk | None: ...
    @abc.abstractmethod
    async def update(self, kiosk: Kiosk) -> None: ...
    @abc.abstractmethod
    async def list_by_facility(self, facility_id: str) -> list[Kiosk]: ...
    @abc.abstractmethod
    async def lock_for_booking(self, kiosk_id: str) -> None:
        """Serialise bookings on one kiosk until this unit of work ends, so the
        overlap check and the insert that follows cannot interleave with
        another booking's."""


class ApplicationRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, application: Application) -> None: ...
    @abc.abstractmethod
    async def get(self, application_id: str) -> Application | None: ...
    @abc.abstractmethod
    async def get_by_number(self, number: str) -> Application | None: ...
    @abc.abstractmethod
    async def update(self, application: Application) -> None:
        """Save, bumping ``version``; ``Conflict`` if the stored version moved on."""

    @abc.abstractmethod
    async def list(
        self,
        facility_id: str,
        *,
        states: frozenset[ApplicationState] | None = None,
        submitted_from: datetime | None = None,
        submitted_before: datetime | None = None,
    ) -> list[Application]:
        """Oldest first."""


class AppointmentRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, appointment: Appointment) -> None: ...
    @abc.abstractmethod
    async def get(self, appointment_id: str) -> Appointment | None: ...
    @abc.abstractmethod
    async def update(self, appointment: Appointment) -> None: ...
    @abc.abstractmethod
    async def overlapping(
        self, kiosk_id: str, starts_at: datetime, ends_at: datetime
    ) -> list[Appointment]:
        """Non-cancelled appointments on the kiosk that intersect [starts_at, ends_at)."""

    @abc.abstractmethod
    async def for_detainee(self, detainee_id: str) -> list[Appointment]:
        """Non-cancelled appointments of the detainee, by start time."""

    @abc.abstractmethod
    async def for_application(self, application_id: str) -> list[Appointment]:
        """Appointments (cancelled ones too) booked for the application, by start time."""


class VisitRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, visit: Visit) -> None: ...
    @abc.abstractmethod
    async def get(self, visit_id: str) -> Visit | None: ...
    @abc.abstractmethod
    async def get_by_appointment(self, appointment_id: str) -> Visit | None: ...
    @abc.abstractmethod
    async def update(self, visit: Visit) -> None:
        """Save, bumping ``version``; ``Conflict`` if the stored version moved on."""

    @abc.abstractmethod
    async def list_by_state(
        self, facility_id: str, states: frozenset[VisitState]
    ) -> list[Visit]: ...


class CredentialRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, credential: VisitCredential) -> None: ...
    @abc.abstractmethod
    async def get_by_token_hash(self, token_hash: str) -> VisitCredential | None: ...
    @abc.abstractmethod
    async def update(self, credential: VisitCredential) -> None: ...
    @abc.abstractmethod
    async def for_visit(self, visit_id: str) -> list[VisitCredential]: ...


class AuditLog(abc.ABC):
    @abc.abstractmethod
    async def append(self, events: list[Event]) -> list[AuditRecord]:
        """Seal the events onto the end of the chain (in order) and store them.
        Concurrent appenders must never fork the chain: one of them fails with
        ``Conflict`` (and the unit of work is retried) rather than both winning."""

    @abc.abstractmethod
    async def head(self) -> AuditRecord | None: ...
    @abc.abstractmethod
    async def records(self, *, after_seq: int = 0, limit: int | None = None) -> list[AuditRecord]:
        """In chain order."""

    @abc.abstractmethod
    async def for_subject(self, subject_type: str, subject_id: str) -> list[AuditRecord]: ...


class CalendarRepository(abc.ABC):
    @abc.abstractmethod
    async def put(self, override: CalendarOverride) -> None:
        """Insert or replace the override for that day."""

    @abc.abstractmethod
    async def remove(self, day: date) -> None: ...
    @abc.abstractmethod
    async def list(self, year: int | None = None) -> list[CalendarOverride]: ...


class OutboxRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, notice: Notice) -> None: ...
    @abc.abstractmethod
    async def update(self, notice: Notice) -> None: ...
    @abc.abstractmethod
    async def due(self, now: datetime, limit: int) -> list[Notice]:
        """Pending notices whose next attempt is due, oldest first."""

    @abc.abstractmethod
    async def for_application(self, application_id: str) -> list[Notice]: ...


class UnitOfWork(abc.ABC):
    facilities: FacilityRepository
    detainees: DetaineeRepository
    officers: OfficerRepository
    kiosks: KioskRepository
    applications: ApplicationRepository
    appointments: AppointmentRepository
    visits: VisitRepository
    credentials: CredentialRepository
    audit: AuditLog
    calendar: CalendarRepository
    outbox: OutboxRepository

    async def __aenter__(self) -> Self:
        await self._begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.rollback()

    @abc.abstractmethod
    async def _begin(self) -> None: ...
    @abc.abstractmethod
    async def commit(self) -> None: ...
    @abc.abstractmethod
    async def rollback(self) -> None:
        """Undo whatever was not committed; a no-op after ``commit``."""


class UnitOfWorkFactory(abc.ABC):
    """Makes a fresh unit of work per operation (one transaction each)."""

    @abc.abstractmethod
    def __call__(self) -> UnitOfWork: ...


class conflicts:  # noqa: N801 - a namespace of factories, read as conflicts.duplicate()
    """The conflicts every adapter raises for the same broken rule, in one place
    so the memory fake and the SQL adapter cannot drift apart."""

    @staticmethod
    def duplicate() -> Conflict:
        return Conflict("duplicate", "记录已存在", "The record already exists")

    @staticmethod
    def missing() -> Conflict:
        return Conflict("missing", "记录不存在", "The record does not exist")

    @staticmethod
    def stale_write() -> Conflict:
        return Conflict(
            "stale_write",
            "数据已被他人修改，请刷新后重试",
            "Someone else changed this; reload and retry",
        )

    @staticmethod
    def integrity() -> Conflict:
        return Conflict(
            "integrity",
            "数据关联不一致，请刷新后重试",
            "The record refers to something that does not exist; reload and retry",
        )

    @staticmethod
    def username_taken() -> Conflict:
        return Conflict(
            "username_taken", "用户名已被使用", "That username is taken", field="username"
        )

    @staticmethod
    def duplicate_device_token() -> Conflict:
        return Conflict("duplicate_device_token", "终端凭证重复", "Duplicate kiosk device token")

    @staticmethod
    def duplicate_number() -> Conflict:
        return Conflict("duplicate_number", "申请编号重复", "Duplicate application number")

    @staticmethod
    def visit_exists() -> Conflict:
        return Conflict("visit_exists", "该预约已有会见", "That appointment already has a visit")

    @staticmethod
    def duplicate_token() -> Conflict:
        return Conflict("duplicate_token", "凭证重复", "Duplicate credential")

    @staticmethod
    def chain_contention() -> Conflict:
        return ChainContention(
            "audit_chain_contention",
            "台账正被同时写入，请重试",
            "Someone else extended the audit log at the same time; retry",
        )
