"""face calibration: each character's face threshold per face model

Revision ID: 0006_face_calibration
Revises: 0004_job_runs
Create Date: 2026-12-01 13:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_face_calibration"
down_revision: str | None = "0004_job_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "face_calibrations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "character_id",
            sa.Integer(),
            sa.ForeignKey("characters.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("references", sa.Integer(), nullable=False),
        sa.Column("impostors", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column(
            "calibrated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.UniqueConstraint("character_id", "model_name"),
    )


def downgrade() -> None:
    op.drop_table("face_calibrations")
