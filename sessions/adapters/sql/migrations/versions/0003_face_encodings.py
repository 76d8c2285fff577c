"""Face enrolment: each visitor's 128-d face encoding (recognition.enrolment).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: applications stored before enrolment existed have none.
    with op.batch_alter_table("application_visitors") as batch:
        batch.add_column(sa.Column("face_encoding", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("application_visitors") as batch:
        batch.drop_column("face_encoding")
