"""initial: brands, members, consents and their history, API keys, outbox, inbox, idempotency keys

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "members"
PURPOSES = "purpose IN ('email_marketing', 'sms_marketing', 'push', 'personalisation')"


def upgrade() -> None:
    op.create_table(
        "brands",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_brands")),
        schema=SCHEMA,
    )
    op.create_table(
        "members",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("brand_id", sa.UUID(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("locale", sa.Text(), nullable=True),
        sa.Column("time_zone", sa.Text(), nullable=True),
        sa.Column(
            "traits",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "interests",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=32), server_default="active", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'erased')", name=op.f("ck_members_member_status")
        ),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["members.brands.id"], name=op.f("fk_members_brand_id_brands")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
        sa.UniqueConstraint(
            "brand_id", "external_id", name=op.f("uq_members_brand_id_external_id")
        ),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_members_brand_id_id"), "members", ["brand_id", "id"], schema=SCHEMA
    )
    op.create_index(
        op.f("ix_members_brand_id_email"), "members", ["brand_id", "email"], schema=SCHEMA
    )
    op.create_table(
        "consents",
        sa.Column("member_id", sa.UUID(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("brand_id", sa.UUID(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(PURPOSES, name=op.f("ck_consents_consent_purpose")),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["members.brands.id"], name=op.f("fk_consents_brand_id_brands")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.members.id"], name=op.f("fk_consents_member_id_members")
        ),
        sa.PrimaryKeyConstraint("member_id", "purpose", name=op.f("pk_consents")),
        schema=SCHEMA,
    )
    op.create_table(
        "consent_history",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("member_id", sa.UUID(), nullable=False),
        sa.Column("brand_id", sa.UUID(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(PURPOSES, name=op.f("ck_consent_history_consent_purpose")),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["members.brands.id"], name=op.f("fk_consent_history_brand_id_brands")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.members.id"],
            name=op.f("fk_consent_history_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_history")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_consent_history_member_id_id"),
        "consent_history",
        ["member_id", "id"],
        schema=SCHEMA,
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("brand_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["members.brands.id"], name=op.f("fk_api_keys_brand_id_brands")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_api_keys_brand_id_id"), "api_keys", ["brand_id", "id"], schema=SCHEMA
    )

    # Kernel tables: events out (outbox), events handled (inbox), replayable writes.
    op.create_table(
        "outbox",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.UUID(), nullable=False),
        sa.Column("subject_id", sa.UUID(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.Text(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
        schema=SCHEMA,
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("brand_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("brand_id", "key", name=op.f("pk_idempotency_keys")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys", schema=SCHEMA)
    op.drop_table("inbox", schema=SCHEMA)
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema=SCHEMA)
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("api_keys", schema=SCHEMA)
    op.drop_table("consent_history", schema=SCHEMA)
    op.drop_table("consents", schema=SCHEMA)
    op.drop_table("members", schema=SCHEMA)
    op.drop_table("brands", schema=SCHEMA)
