"""inbox subjects: the subject and time of events handled by groups that keep only a subject's
latest state, so that an older event is not applied over a newer one

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "rewards"


def upgrade() -> None:
    op.add_column("inbox", sa.Column("subject_id", sa.UUID(), nullable=True), schema=SCHEMA)
    op.add_column(
        "inbox", sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True), schema=SCHEMA
    )
    op.create_index(
        "ix_inbox_subject",
        "inbox",
        ["consumer", "subject_id", "occurred_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("subject_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_subject", table_name="inbox", schema=SCHEMA)
    op.drop_column("inbox", "occurred_at", schema=SCHEMA)
    op.drop_column("inbox", "subject_id", schema=SCHEMA)
