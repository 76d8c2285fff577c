"""Kiosks and the appointments booked on them.

A kiosk is one terminal in the cell block: it can host one visit at a time, so
two appointments on one kiosk must never overlap. The domain states the rule;
the repository makes it hold under concurrent bookings (see
``KioskRepository.lock_for_booking``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .errors import Conflict, ValidationError
from .events import Event, EventName, SubjectType, officer_actor
from .facilities import Facility

#: A relative may open the visit link this long before the slot starts (lobby, camera check).
EARLY_JOIN = timedelta(minutes=15)


@dataclass
class Kiosk:
    id: str
    facility_id: str
    name: str
    #: sha256 of the device token the kiosk page presents; the token itself is shown once.
    device_token_hash: str
    active: bool = True


@dataclass
class Appointment:
    id: str
    facility_id: str
    kiosk_id: str
    application_id: str
    detainee_id: str
    starts_at: datetime
    ends_at: datetime
    booked_by: str
    cancelled: bool = False
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    def overlaps(self, other: Appointment) -> bool:
        return (
            not self.cancelled
            and not other.cancelled
            and self.kiosk_id == other.kiosk_id
            and self.starts_at < other.ends_at
            and other.starts_at < self.ends_at
        )

    @property
    def join_opens_at(self) -> datetime:
        return self.starts_at - EARLY_JOIN

    @classmethod
    def book(
        cls,
        *,
        id: str,
        facility: Facility,
        kiosk: Kiosk,
        application_id: str,
        detainee_id: str,
        starts_at: datetime,
        minutes: int,
        booked_by: str,
        now: datetime,
        existing: Iterable[Appointment],
    ) -> Appointment:
        if kiosk.facility_id != facility.id or not kiosk.active:
            raise ValidationError(
                "kiosk_unavailable",
                "该会见终端不可用",
                "That kiosk is not available",
                field="kiosk_id",
            )
        if starts_at <= now:
            raise ValidationError(
                "slot_in_past",
                "预约时间必须晚于当前时间",
                "The slot must be in the future",
                field="starts_at",
            )
        ends_at = starts_at + timedelta(minutes=minutes)
        if not facility.rules.opening_hours.contains(starts_at, ends_at, facility.tz):
            raise ValidationError(
                "slot_outside_hours",
                f"预约时间须在开放时段内（{facility.rules.opening_hours.as_text()}）",
                f"The slot must lie inside opening hours ({facility.rules.opening_hours.as_text()})",
                field="starts_at",
            )
        appointment = cls(
            id=id,
            facility_id=facility.id,
            kiosk_id=kiosk.id,
            application_id=application_id,
            detainee_id=detainee_id,
            starts_at=starts_at,
            ends_at=ends_at,
            booked_by=booked_by,
        )
        clash = next((a for a in existing if appointment.overlaps(a)), None)
        if clash is not None:
            raise Conflict(
                "slot_taken",
                "该终端在此时段已有预约，请选择其他时段",
                "The kiosk is already booked at that time; choose another slot",
            )
        appointment.events.append(
            Event.of(
                EventName.APPOINTMENT_BOOKED,
                SubjectType.APPOINTMENT,
                id,
                actor=officer_actor(booked_by),
                at=now,
                facility_id=facility.id,
                kiosk_id=kiosk.id,
                application_id=application_id,
                starts_at=starts_at,
                ends_at=ends_at,
            )
        )
        return appointment
