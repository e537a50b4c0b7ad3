"""look story points: a look in force from a point of the story the episodes adapt

Revision ID: 0010_look_story_points
Revises: 0009_character_looks
Create Date: 2026-12-01 17:00:00

``character_looks.from_story_commit_id`` (a story commit: in force for the episodes adapting a
version that holds it) and ``from_story_scene`` (a story scene or chapter slug: in force for
the episodes adapting it or a later one); at most one of them and ``from_episode`` is set.
The downgrade turns such looks into looks only a cut names (their rows and references stay).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_look_story_points"
down_revision: str | None = "0009_character_looks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("character_looks", sa.Column("from_story_commit_id", sa.Integer(), nullable=True))
    op.add_column(
        "character_looks", sa.Column("from_story_scene", sa.String(length=100), nullable=True)
    )
    op.create_foreign_key(
        op.f("fk_character_looks_from_story_commit_id_story_commits"),
        "character_looks",
        "story_commits",
        ["from_story_commit_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        op.f("ix_character_looks_from_story_commit_id"),
        "character_looks",
        ["from_story_commit_id"],
    )
    op.create_check_constraint(
        op.f("ck_character_looks_one_start"),
        "character_looks",
        "num_nonnulls(from_episode, from_story_commit_id, from_story_scene) <= 1",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_character_looks_one_start"), "character_looks", type_="check")
    op.drop_index(op.f("ix_character_looks_from_story_commit_id"), table_name="character_looks")
    op.drop_constraint(
        op.f("fk_character_looks_from_story_commit_id_story_commits"),
        "character_looks",
        type_="foreignkey",
    )
    op.drop_column("character_looks", "from_story_scene")
    op.drop_column("character_looks", "from_story_commit_id")
