"""reel and continuity: the episode assembled as an MP4 and a contact sheet with the recipe
behind it; continuity scores between consecutive cuts

Revision ID: 0007_reel_continuity
Revises: 0006_face_calibration
Create Date: 2026-12-01 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_reel_continuity"
down_revision: str | None = "0006_face_calibration"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("episode_id", sa.Integer(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("mime", sa.String(length=100), nullable=False),
        sa.Column("codec", sa.String(length=32), nullable=False),
        sa.Column("fps", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("only_approved", sa.Boolean(), nullable=False),
        sa.Column("cuts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("contact_sheet_uri", sa.Text(), nullable=True),
        sa.Column("contact_sheet_sha256", sa.String(length=64), nullable=True),
        sa.Column("prefect_flow_run_id", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["episode_id"],
            ["episodes.id"],
            name=op.f("fk_reels_episode_id_episodes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_reels_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reels")),
        sa.UniqueConstraint("episode_id", "sha256", name=op.f("uq_reels_episode_id_sha256")),
    )


    op.create_table(
        "continuity_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("episode_id", sa.Integer(), nullable=False),
        sa.Column("cut_id", sa.Integer(), nullable=False),
        sa.Column("previous_cut_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("previous_job_id", sa.Integer(), nullable=True),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("comparator", sa.String(length=2), nullable=False),
        sa.Column(
            "verdict",
            sa.Enum(
                "passed", "failed", "could_not_judge", name="continuity_verdict",
                native_enum=False, create_constraint=True, length=32,
            ),
            nullable=False,
        ),  # fmt: skip
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["episode_id"], ["episodes.id"],
            name=op.f("fk_continuity_scores_episode_id_episodes"), ondelete="CASCADE",
        ),  # fmt: skip
        sa.ForeignKeyConstraint(
            ["cut_id"], ["cuts.id"],
            name=op.f("fk_continuity_scores_cut_id_cuts"), ondelete="CASCADE",
        ),  # fmt: skip
        sa.ForeignKeyConstraint(
            ["previous_cut_id"], ["cuts.id"],
            name=op.f("fk_continuity_scores_previous_cut_id_cuts"), ondelete="CASCADE",
        ),  # fmt: skip
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"],
            name=op.f("fk_continuity_scores_job_id_jobs"), ondelete="SET NULL",
        ),  # fmt: skip
        sa.ForeignKeyConstraint(
            ["previous_job_id"], ["jobs.id"],
            name=op.f("fk_continuity_scores_previous_job_id_jobs"), ondelete="SET NULL",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_continuity_scores")),
        sa.UniqueConstraint(
            "cut_id", "previous_cut_id", "metric", "subject",
            name=op.f("uq_continuity_scores_cut_id_previous_cut_id_metric_subject"),
        ),  # fmt: skip
    )


def downgrade() -> None:
    op.drop_table("continuity_scores")
    op.drop_table("reels")
