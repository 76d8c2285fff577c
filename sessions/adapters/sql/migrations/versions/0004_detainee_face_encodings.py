"""Face enrolment of detainees: the 128-d encoding of the facility's photo of
each detainee, so a visit can check the kiosk side (recognition.enrolment).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: detainees registered before their photo is uploaded have none.
    with op.batch_alter_table("detainees") as batch:
        batch.add_column(sa.Column("face_encoding", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("detainees") as batch:
        batch.drop_column("face_encoding")
