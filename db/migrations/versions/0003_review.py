"""review: people's decisions on cut outputs, counted by the phase gates

Revision ID: 0003_review
Revises: 0002_storyline
Create Date: 2026-11-23 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_review"
down_revision: str | None = "0002_storyline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PHASES = ("concept", "generation", "animation", "quality")
_STATUSES = (
    "pending",
    "queued",
    "running",
    "rendered",
    "passed",
    "failed",
    "needs_review",
    "error",
    "cancelled",
)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def upgrade() -> None:
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("cut_id", sa.Integer(), nullable=True),
        sa.Column("phase", _enum("review_phase", *_PHASES), nullable=False),
        sa.Column("outcome", _enum("review_outcome", "approved", "rejected"), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("previous_status", _enum("review_previous_status", *_STATUSES), nullable=False),
        sa.Column(
            "previous_verdict",
            _enum("review_previous_verdict", "passed", "failed", "could_not_judge"),
            nullable=True,
        ),
        sa.Column("overruled", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("last_attempt", sa.Integer(), nullable=False),
        sa.Column(
            "decided_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["cut_id"],
            ["cuts.id"],
            name=op.f("fk_review_decisions_cut_id_cuts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_review_decisions_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_decisions")),
    )
    op.create_index(
        "ix_review_decisions_cut_phase", "review_decisions", ["cut_id", "phase"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_review_decisions_cut_phase", table_name="review_decisions")
    op.drop_table("review_decisions")
