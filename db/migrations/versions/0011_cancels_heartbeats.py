"""cancels and heartbeats: a person's cancel reaches cuts that have no job yet; a run of
another machine is told crashed by its process's heartbeat

Revision ID: 0011_cancels_heartbeats
Revises: 0010_look_story_points
Create Date: 2026-12-01 16:45:00

``render_cancellations`` records each `anime cancel` (and each cancel of a run in the Prefect
UI): an episode, or one scene or cut of it, and when (the database's clock). A run that started
before a cancellation submits none of the cuts it covers. ``process_heartbeats`` holds each
job-taking process's last beat (host, pid, start time; the database's clock).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_cancels_heartbeats"
down_revision: str | None = "0010_look_story_points"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "render_cancellations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("episode_id", sa.Integer(), nullable=False),
        sa.Column("scene_id", sa.Integer(), nullable=True),
        sa.Column("cut_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "requested_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["episode_id"],
            ["episodes.id"],
            name="fk_render_cancellations_episode_id_episodes",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["scene_id"],
            ["scenes.id"],
            name="fk_render_cancellations_scene_id_scenes",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["cut_id"], ["cuts.id"], name="fk_render_cancellations_cut_id_cuts", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_render_cancellations"),
    )
    op.create_index(
        "ix_render_cancellations_episode_id", "render_cancellations", ["episode_id"], unique=False
    )
    op.create_table(
        "process_heartbeats",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("process_started", sa.String(length=32), nullable=False),
        sa.Column(
            "beat_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("host", "pid", "process_started", name="pk_process_heartbeats"),
    )


def downgrade() -> None:
    op.drop_table("process_heartbeats")
    op.drop_index("ix_render_cancellations_episode_id", table_name="render_cancellations")
    op.drop_table("render_cancellations")
