"""database identity: one id per database, from which its jobs' ComfyUI prompt ids are derived

Revision ID: 0012_database_identity
Revises: 0011_cancels_heartbeats
Create Date: 2026-12-01 20:00:00

A prompt id was derived from the job id and attempt alone, so two databases sharing one ComfyUI
server (staging beside production) gave the same id to different renders: a job of one
re-attached to the other's prompt and stored its outputs, and a cancel in one withdrew the
other's prompts. ``database_identity`` holds one random id, made here (or on first use, should
the row be gone), that every prompt id of this database now includes.
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_database_identity"
down_revision: str | None = "0011_cancels_heartbeats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "database_identity",
        sa.Column("singleton", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("singleton", name="ck_database_identity_one_row"),
        sa.PrimaryKeyConstraint("singleton", name="pk_database_identity"),
        sa.UniqueConstraint("id", name="uq_database_identity_id"),
    )
    op.bulk_insert(table, [{"singleton": True, "id": uuid.uuid4()}])


def downgrade() -> None:
    op.drop_table("database_identity")
