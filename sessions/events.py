"""Domain events: what happened, recorded by the aggregate that caused it.

Aggregates append events to their ``events`` list; the service layer writes
them into the audit chain in the same transaction as the change and then
publishes them on the bus. Event names are past tense and typed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum, StrEnum
from typing import Any

Json = None | bool | int | float | str | list["Json"] | dict[str, "Json"]


class SubjectType(StrEnum):
    FACILITY = "facility"
    DETAINEE = "detainee"
    OFFICER = "officer"
    KIOSK = "kiosk"
    APPLICATION = "application"
    APPOINTMENT = "appointment"
    VISIT = "visit"
    CREDENTIAL = "credential"
    CALENDAR = "calendar"


class EventName(StrEnum):
    FACILITY_CREATED = "facility.created"
    FACILITY_RULES_CHANGED = "facility.rules_changed"
    DETAINEE_REGISTERED = "detainee.registered"
    DETAINEE_UPDATED = "detainee.updated"
    OFFICER_CREATED = "officer.created"
    OFFICER_PASSWORD_CHANGED = "officer.password_changed"
    OFFICER_UPDATED = "officer.updated"
    KIOSK_REGISTERED = "kiosk.registered"
    APPLICATION_SUBMITTED = "application.submitted"
    APPLICATION_RETURNED = "application.returned"
    APPLICATION_RESUBMITTED = "application.resubmitted"
    APPLICATION_ACCEPTED = "application.accepted"
    APPLICATION_APPROVED = "application.approved"
    APPLICATION_REJECTED = "application.rejected"
    APPLICATION_SCHEDULED = "application.scheduled"
    EXCEPTION_GRANTED = "application.exception_granted"
    APPOINTMENT_BOOKED = "appointment.booked"
    CREDENTIAL_ISSUED = "credential.issued"
    CREDENTIAL_FAILED = "credential.failed_attempt"
    CREDENTIAL_LOCKED = "credential.locked"
    CREDENTIAL_REVOKED = "credential.revoked"
    VISIT_LOBBY_ENTERED = "visit.lobby_entered"
    VISIT_REJOINED = "visit.rejoined"
    VISIT_CONNECTING = "visit.connecting"
    VISIT_IDENTITY_CHECK_STARTED = "visit.identity_check_started"
    VISIT_WENT_LIVE = "visit.went_live"
    VISIT_ENDED = "visit.ended"
    VISIT_WARNED = "visit.warned"
    VISIT_MUTE_CHANGED = "visit.mute_changed"
    VISIT_CHAT_SENT = "visit.chat_sent"
    VISIT_IDENTITY_CHECKED = "visit.identity_checked"
    VISIT_FACE_ALERT = "visit.face_alert"
    VISIT_PRESENCE_CHANGED = "visit.presence_changed"
    CALENDAR_OVERRIDE_SET = "calendar.override_set"
    CALENDAR_OVERRIDE_REMOVED = "calendar.override_removed"


SYSTEM = "system"
#: The automatic identity gate (ID card + live face) and the unexpected-face watch.
FACE_GATE = "system:face_gate"
FACE_WATCH = "system:face_watch"


def officer_actor(officer_id: str) -> str:
    return f"officer:{officer_id}"


def jsonable(value: Any) -> Json:
    """Turn event data into plain JSON values so the audit hash is stable."""
    if value is None or isinstance(value, bool | int | float | str):
        return value  # type: ignore[no-any-return]
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    raise TypeError(f"cannot put {type(value).__name__} into an event")


@dataclass(frozen=True)
class Event:
    name: EventName
    subject_type: SubjectType
    subject_id: str
    actor: str
    at: datetime
    facility_id: str | None = None
    data: Mapping[str, Json] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        name: EventName,
        subject_type: SubjectType,
        subject_id: str,
        /,
        *,
        actor: str,
        at: datetime,
        facility_id: str | None,
        **data: Any,
    ) -> Event:
        clean = jsonable(data)
        assert isinstance(clean, dict)
        return cls(name, subject_type, subject_id, actor, at, facility_id, clean)
