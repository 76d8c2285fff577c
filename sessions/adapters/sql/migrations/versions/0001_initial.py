"""Initial schema: every aggregate, the audit chain and the calendar overrides.

Written by hand to mirror ``sessions/adapters/sql/tables.py`` as of this
revision (and frozen from then on: it deliberately does not import tables.py).
Constraint and index names follow ``tables.NAMING_CONVENTION``.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 64
ENUM = 32
NAME = 200
HASH = 255


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "facilities",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("kind", sa.String(ENUM), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("visits_per_period", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(ENUM), nullable=False),
        sa.Column("max_visit_minutes", sa.Integer(), nullable=False),
        sa.Column("max_people", sa.Integer(), nullable=False),
        sa.Column("unexpected_face_policy", sa.String(ENUM), nullable=False),
        sa.Column("opening_hours", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_facilities"),
    )

    op.create_table(
        "detainees",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("facility_id", sa.String(ID), nullable=False),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("admitted_on", sa.Date(), nullable=False),
        sa.Column("released_on", sa.Date(), nullable=True),
        sa.Column("refuses_video_visits", sa.Boolean(), nullable=False),
        sa.Column("strict_management", sa.Boolean(), nullable=False),
        sa.Column("serious_violation", sa.Boolean(), nullable=False),
        sa.Column("foreign_national", sa.Boolean(), nullable=False),
        sa.Column("in_detox_treatment", sa.Boolean(), nullable=False),
        sa.Column("pending_criminal_transfer", sa.Boolean(), nullable=False),
        sa.Column("photo_ref", sa.String(NAME), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_detainees"),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facilities.id"], name="fk_detainees_facility_id_facilities"
        ),
    )
    op.create_index("ix_detainees_facility_id_name", "detainees", ["facility_id", "name"])

    op.create_table(
        "officers",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("facility_id", sa.String(ID), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(NAME), nullable=False),
        sa.Column("password_hash", sa.String(HASH), nullable=False),
        sa.Column("roles", sa.String(NAME), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_officers"),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facilities.id"], name="fk_officers_facility_id_facilities"
        ),
        sa.UniqueConstraint("username", name="uq_officers_username"),
    )
    op.create_index("ix_officers_facility_id", "officers", ["facility_id"])

    op.create_table(
        "kiosks",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("facility_id", sa.String(ID), nullable=False),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("device_token_hash", sa.String(HASH), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("booking_lock", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kiosks"),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facilities.id"], name="fk_kiosks_facility_id_facilities"
        ),
        sa.UniqueConstraint("device_token_hash", name="uq_kiosks_device_token_hash"),
    )
    op.create_index("ix_kiosks_facility_id", "kiosks", ["facility_id"])

    op.create_table(
        "applications",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("facility_id", sa.String(ID), nullable=False),
        sa.Column("detainee_id", sa.String(ID), nullable=False),
        sa.Column("reason", sa.String(ENUM), nullable=False),
        sa.Column("reason_detail", sa.Text(), nullable=False),
        sa.Column("submitted_at", _instant(), nullable=False),
        sa.Column("deadline_due", sa.Date(), nullable=False),
        sa.Column("deadline_unconfirmed_years", sa.String(NAME), nullable=False),
        sa.Column("state", sa.String(ENUM), nullable=False),
        sa.Column("decided_by", sa.String(ID), nullable=True),
        sa.Column("decided_at", _instant(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_applications"),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facilities.id"], name="fk_applications_facility_id_facilities"
        ),
        sa.ForeignKeyConstraint(
            ["detainee_id"], ["detainees.id"], name="fk_applications_detainee_id_detainees"
        ),
        sa.UniqueConstraint("number", name="uq_applications_number"),
    )
    op.create_index(
        "ix_applications_facility_id_submitted_at", "applications", ["facility_id", "submitted_at"]
    )
    op.create_index("ix_applications_detainee_id", "applications", ["detainee_id"])

    op.create_table(
        "application_visitors",
        sa.Column("application_id", sa.String(ID), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("id_number", sa.String(32), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("relationship", sa.String(ENUM), nullable=False),
        sa.Column("id_photo_ref", sa.String(NAME), nullable=False),
        sa.PrimaryKeyConstraint("application_id", "position", name="pk_application_visitors"),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name="fk_application_visitors_application_id_applications",
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "application_exceptions",
        sa.Column("application_id", sa.String(ID), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(ENUM), nullable=False),
        sa.Column("granted_by", sa.String(ID), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_at", _instant(), nullable=False),
        sa.Column("extra_minutes", sa.Integer(), nullable=False),
        sa.Column("extra_people", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("application_id", "position", name="pk_application_exceptions"),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name="fk_application_exceptions_application_id_applications",
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "appointments",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("facility_id", sa.String(ID), nullable=False),
        sa.Column("kiosk_id", sa.String(ID), nullable=False),
        sa.Column("application_id", sa.String(ID), nullable=False),
        sa.Column("detainee_id", sa.String(ID), nullable=False),
        sa.Column("starts_at", _instant(), nullable=False),
        sa.Column("ends_at", _instant(), nullable=False),
        sa.Column("booked_by", sa.String(ID), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_appointments"),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facilities.id"], name="fk_appointments_facility_id_facilities"
        ),
        sa.ForeignKeyConstraint(
            ["kiosk_id"], ["kiosks.id"], name="fk_appointments_kiosk_id_kiosks"
        ),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name="fk_appointments_application_id_applications",
        ),
        sa.ForeignKeyConstraint(
            ["detainee_id"], ["detainees.id"], name="fk_appointments_detainee_id_detainees"
        ),
    )
    op.create_index("ix_appointments_kiosk_id_starts_at", "appointments", ["kiosk_id", "starts_at"])
    op.create_index(
        "ix_appointments_detainee_id_starts_at", "appointments", ["detainee_id", "starts_at"]
    )
    op.create_index("ix_appointments_application_id", "appointments", ["application_id"])

    op.create_table(
        "visits",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("facility_id", sa.String(ID), nullable=False),
        sa.Column("appointment_id", sa.String(ID), nullable=False),
        sa.Column("application_id", sa.String(ID), nullable=True),
        sa.Column("kiosk_id", sa.String(ID), nullable=False),
        sa.Column("kind", sa.String(ENUM), nullable=False),
        sa.Column("limit_minutes", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(ENUM), nullable=False),
        sa.Column("live_at", _instant(), nullable=True),
        sa.Column("ended_at", _instant(), nullable=True),
        sa.Column("end_reason", sa.String(ENUM), nullable=True),
        sa.Column("end_note", sa.Text(), nullable=True),
        sa.Column("ended_by", sa.String(NAME), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_visits"),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facilities.id"], name="fk_visits_facility_id_facilities"
        ),
        sa.ForeignKeyConstraint(
            ["appointment_id"], ["appointments.id"], name="fk_visits_appointment_id_appointments"
        ),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name="fk_visits_application_id_applications"
        ),
        sa.ForeignKeyConstraint(["kiosk_id"], ["kiosks.id"], name="fk_visits_kiosk_id_kiosks"),
        sa.UniqueConstraint("appointment_id", name="uq_visits_appointment_id"),
    )
    op.create_index("ix_visits_facility_id_state", "visits", ["facility_id", "state"])

    op.create_table(
        "credentials",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("visit_id", sa.String(ID), nullable=False),
        sa.Column("facility_id", sa.String(ID), nullable=False),
        sa.Column("token_hash", sa.String(HASH), nullable=False),
        sa.Column("code_hash", sa.String(HASH), nullable=False),
        sa.Column("valid_from", _instant(), nullable=False),
        sa.Column("valid_until", _instant(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("total_failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", _instant(), nullable=True),
        sa.Column("first_used_at", _instant(), nullable=True),
        sa.Column("revoked_at", _instant(), nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
        sa.Column("sealed_secrets", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_credentials"),
        sa.ForeignKeyConstraint(["visit_id"], ["visits.id"], name="fk_credentials_visit_id_visits"),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facilities.id"], name="fk_credentials_facility_id_facilities"
        ),
        sa.UniqueConstraint("token_hash", name="uq_credentials_token_hash"),
    )
    op.create_index("ix_credentials_visit_id", "credentials", ["visit_id"])

    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", _instant(), nullable=False),
        sa.Column("facility_id", sa.String(ID), nullable=True),
        sa.Column("actor", sa.String(NAME), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("subject_type", sa.String(ENUM), nullable=False),
        sa.Column("subject_id", sa.String(ID), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    )
    op.create_index(
        "ix_audit_log_subject_type_subject_id", "audit_log", ["subject_type", "subject_id"]
    )

    op.create_table(
        "calendar_overrides",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("is_workday", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_calendar_overrides"),
    )


def downgrade() -> None:
    for table in (
        "calendar_overrides",
        "audit_log",
        "credentials",
        "visits",
        "appointments",
        "application_exceptions",
        "application_visitors",
        "applications",
        "kiosks",
        "officers",
        "detainees",
        "facilities",
    ):
        op.drop_table(table)
