"""The relational schema of VisitGate, one definition for SQLite and PostgreSQL.

This module owns the shape of the tables (SQLAlchemy Core, no ORM) and the
``UTCDateTime`` column type. The hand-written Alembic migrations in
``migrations/versions`` must mirror it exactly; ``tests/integration/
test_migrations.py`` compares the two on both databases, so change them together.

It must never hold behaviour: no queries, no engines, nothing created at import
time beyond the ``MetaData`` description itself. Enumerations are stored as
plain strings (``String(32)``) and converted by the repositories, so adding a
member never needs a database enum migration. Constraint names come from an
explicit naming convention so that migrations can name them deterministically.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID = 64  # length of identifier columns (uuid4 hex is 32)
ENUM = 32  # length of enum-valued columns
NAME = 200  # names, usernames, references to stored files
HASH = 255  # sha256 hex digests and argon2 encoded hashes


class UTCDateTime(TypeDecorator[datetime]):
    """An instant in time: timezone-aware in, timezone-aware UTC out.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value is
    stored as naive UTC text (SQLAlchemy's fixed-width format with microseconds,
    which also sorts chronologically). Naive datetimes are refused on the way in:
    the domain works in aware instants only and a naive one is a bug.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(DateTime(timezone=False))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UTCDateTime needs a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime not allowed: {value!r}")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _id(name: str = "id", **kwargs: Any) -> Column[str]:
    return Column(name, String(ID), **kwargs)


def _fk(name: str, target: str, *, nullable: bool = False, **kwargs: Any) -> Column[str]:
    return Column(name, String(ID), ForeignKey(target, **kwargs), nullable=nullable)


facilities = Table(
    "facilities",
    metadata,
    _id(primary_key=True),
    Column("name", String(NAME), nullable=False),
    Column("kind", String(ENUM), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("visits_per_period", Integer, nullable=False),
    Column("period", String(ENUM), nullable=False),
    Column("max_visit_minutes", Integer, nullable=False),
    Column("max_people", Integer, nullable=False),
    Column("unexpected_face_policy", String(ENUM), nullable=False),
    #: ``OpeningHours.as_text()``, e.g. ``08:30-12:00,14:00-17:00`` (full ISO times when
    #: a window has seconds, e.g. ``20:00:00-23:59:59.999999``); ``OpeningHours.parse`` reads it.
    Column("opening_hours", Text, nullable=False),
)

detainees = Table(
    "detainees",
    metadata,
    _id(primary_key=True),
    _fk("facility_id", "facilities.id"),
    Column("name", String(NAME), nullable=False),
    Column("admitted_on", Date, nullable=False),
    Column("released_on", Date, nullable=True),
    Column("refuses_video_visits", Boolean, nullable=False),
    Column("strict_management", Boolean, nullable=False),
    Column("serious_violation", Boolean, nullable=False),
    Column("foreign_national", Boolean, nullable=False),
    Column("in_detox_treatment", Boolean, nullable=False),
    Column("pending_criminal_transfer", Boolean, nullable=False),
    Column("photo_ref", String(NAME), nullable=True),
    Column("face_encoding", LargeBinary, nullable=True),
    Index("ix_detainees_facility_id_name", "facility_id", "name"),
)

officers = Table(
    "officers",
    metadata,
    _id(primary_key=True),
    _fk("facility_id", "facilities.id"),
    Column("username", String(64), nullable=False),
    Column("display_name", String(NAME), nullable=False),
    Column("password_hash", String(HASH), nullable=False),
    #: Sorted, comma-separated ``Role`` values.
    Column("roles", String(NAME), nullable=False),
    Column("active", Boolean, nullable=False),
    UniqueConstraint("username"),
    Index("ix_officers_facility_id", "facility_id"),
)

kiosks = Table(
    "kiosks",
    metadata,
    _id(primary_key=True),
    _fk("facility_id", "facilities.id"),
    Column("name", String(NAME), nullable=False),
    Column("device_token_hash", String(HASH), nullable=False),
    Column("active", Boolean, nullable=False),
    #: Bumped by ``lock_for_booking``: the write that serialises bookings on a kiosk.
    Column("booking_lock", Integer, nullable=False),
    UniqueConstraint("device_token_hash"),
    Index("ix_kiosks_facility_id", "facility_id"),
)

applications = Table(
    "applications",
    metadata,
    _id(primary_key=True),
    Column("number", String(64), nullable=False),
    _fk("facility_id", "facilities.id"),
    _fk("detainee_id", "detainees.id"),
    Column("reason", String(ENUM), nullable=False),
    Column("reason_detail", Text, nullable=False),
    Column("submitted_at", UTCDateTime, nullable=False),
    Column("deadline_due", Date, nullable=False),
    #: Comma-separated years, empty when the deadline is confirmed.
    Column("deadline_unconfirmed_years", String(NAME), nullable=False),
    Column("state", String(ENUM), nullable=False),
    Column("decided_by", String(ID), nullable=True),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("decision_reason", Text, nullable=True),
    Column("version", Integer, nullable=False),
    UniqueConstraint("number"),
    Index("ix_applications_facility_id_submitted_at", "facility_id", "submitted_at"),
    Index("ix_applications_detainee_id", "detainee_id"),
)

application_visitors = Table(
    "application_visitors",
    metadata,
    _fk("application_id", "applications.id", ondelete="CASCADE"),
    #: 0 is the applicant.
    Column("position", Integer, nullable=False),
    Column("name", String(NAME), nullable=False),
    Column("id_number", String(32), nullable=False),
    Column("phone", String(32), nullable=False),
    Column("relationship", String(ENUM), nullable=False),
    Column("id_photo_ref", String(NAME), nullable=False),
    #: The 128-d face encoding of the ID-card photo (1024 bytes); NULL before 0003.
    Column("face_encoding", LargeBinary, nullable=True),
    PrimaryKeyConstraint("application_id", "position"),
)

application_exceptions = Table(
    "application_exceptions",
    metadata,
    _fk("application_id", "applications.id", ondelete="CASCADE"),
    Column("position", Integer, nullable=False),
    Column("kind", String(ENUM), nullable=False),
    Column("granted_by", String(ID), nullable=False),
    Column("reason", Text, nullable=False),
    Column("granted_at", UTCDateTime, nullable=False),
    Column("extra_minutes", Integer, nullable=False),
    Column("extra_people", Integer, nullable=False),
    PrimaryKeyConstraint("application_id", "position"),
)

appointments = Table(
    "appointments",
    metadata,
    _id(primary_key=True),
    _fk("facility_id", "facilities.id"),
    _fk("kiosk_id", "kiosks.id"),
    _fk("application_id", "applications.id"),
    _fk("detainee_id", "detainees.id"),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("booked_by", String(ID), nullable=False),
    Column("cancelled", Boolean, nullable=False),
    Index("ix_appointments_kiosk_id_starts_at", "kiosk_id", "starts_at"),
    Index("ix_appointments_detainee_id_starts_at", "detainee_id", "starts_at"),
    Index("ix_appointments_application_id", "application_id"),
)

visits = Table(
    "visits",
    metadata,
    _id(primary_key=True),
    _fk("facility_id", "facilities.id"),
    _fk("appointment_id", "appointments.id"),
    _fk("application_id", "applications.id", nullable=True),
    _fk("kiosk_id", "kiosks.id"),
    Column("kind", String(ENUM), nullable=False),
    Column("limit_minutes", Integer, nullable=False),
    Column("state", String(ENUM), nullable=False),
    Column("live_at", UTCDateTime, nullable=True),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("end_reason", String(ENUM), nullable=True),
    Column("end_note", Text, nullable=True),
    Column("ended_by", String(NAME), nullable=True),
    Column("version", Integer, nullable=False),
    UniqueConstraint("appointment_id"),
    Index("ix_visits_facility_id_state", "facility_id", "state"),
)

credentials = Table(
    "credentials",
    metadata,
    _id(primary_key=True),
    _fk("visit_id", "visits.id"),
    _fk("facility_id", "facilities.id"),
    Column("token_hash", String(HASH), nullable=False),
    Column("code_hash", String(HASH), nullable=False),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_until", UTCDateTime, nullable=False),
    Column("consecutive_failures", Integer, nullable=False),
    Column("total_failures", Integer, nullable=False),
    Column("locked_until", UTCDateTime, nullable=True),
    Column("first_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_reason", Text, nullable=True),
    Column("sealed_secrets", Text, nullable=True),
    UniqueConstraint("token_hash"),
    Index("ix_credentials_visit_id", "visit_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    #: Explicit, never generated: the unique key that stops the chain from forking.
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime, nullable=False),
    # No foreign key: the ledger must outlive and never block anything it records.
    Column("facility_id", String(ID), nullable=True),
    Column("actor", String(NAME), nullable=False),
    Column("event", String(64), nullable=False),
    Column("subject_type", String(ENUM), nullable=False),
    Column("subject_id", String(ID), nullable=False),
    #: ``sessions.audit.canonical_json`` of the data, so the hash recomputes exactly.
    Column("data", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_subject_type_subject_id", "subject_type", "subject_id"),
)

calendar_overrides = Table(
    "calendar_overrides",
    metadata,
    Column("day", Date, primary_key=True),
    Column("is_workday", Boolean, nullable=False),
    Column("note", Text, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    _id(primary_key=True),
    Column("kind", String(ENUM), nullable=False),
    _fk("application_id", "applications.id"),
    Column("phone", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("failed_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_outbox_sent_at_failed_at_next_attempt_at", "sent_at", "failed_at", "next_attempt_at"),
    Index("ix_outbox_application_id", "application_id"),
)
