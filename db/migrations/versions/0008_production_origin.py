"""production origin: where a production's files live, and which variations the file owns

Revision ID: 0008_production_origin
Revises: 0007_reel_continuity
Create Date: 2026-12-01 13:15:00

``projects.root`` is the folder of the production file last imported: image paths inside it
are stored relative to it, so a moved or copied production is the same production.
``character_variations.source`` tells a variation the file owns ("file") from one added
through the domain API ("api"), which a re-import keeps and reports instead of removing.
``announcements`` records the notices sent, so a rerun reaching the same decision is quiet.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_production_origin"
down_revision: str | None = "0007_reel_continuity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("root", sa.Text(), nullable=True))
    op.add_column(
        "character_variations",
        sa.Column("source", sa.String(length=32), nullable=False, server_default="file"),
    )
    op.create_table(
        "announcements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column(
            "announced_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "key"),
    )


def downgrade() -> None:
    op.drop_table("announcements")
    op.drop_column("character_variations", "source")
    op.drop_column("projects", "root")
