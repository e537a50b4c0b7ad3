"""storyline: stories under version control, and the story commit each episode adapts

Revision ID: 0002_storyline
Revises: 0001_production_schema
Create Date: 2026-11-22 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_storyline"
down_revision: str | None = "0001_production_schema"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Links inside a story's history: never deleted piecemeal, checked at commit so that deleting
# a story (cascading to all story tables in one statement) is not refused half-way.
_HISTORY = {"deferrable": True, "initially": "DEFERRED"}


def _timestamps() -> list[sa.Column]:
    return [
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
    ]


def upgrade() -> None:
    op.create_table(
        "stories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("default_branch", sa.String(length=100), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_stories_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stories")),
        sa.UniqueConstraint("project_id", "slug", name=op.f("uq_stories_project_id_slug")),
    )
    op.create_table(
        "story_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("tree", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["story_id"],
            ["stories.id"],
            name=op.f("fk_story_snapshots_story_id_stories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_story_snapshots")),
        sa.UniqueConstraint("story_id", "sha", name=op.f("uq_story_snapshots_story_id_sha")),
    )
    op.create_table(
        "story_commits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "stored_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["story_id"],
            ["stories.id"],
            name=op.f("fk_story_commits_story_id_stories"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["story_snapshots.id"],
            name=op.f("fk_story_commits_snapshot_id_story_snapshots"),
            **_HISTORY,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_story_commits")),
        sa.UniqueConstraint("story_id", "sha", name=op.f("uq_story_commits_story_id_sha")),
    )
    op.create_index(
        op.f("ix_story_commits_snapshot_id"), "story_commits", ["snapshot_id"], unique=False
    )
    op.create_table(
        "story_commit_parents",
        sa.Column("commit_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["commit_id"],
            ["story_commits.id"],
            name=op.f("fk_story_commit_parents_commit_id_story_commits"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["story_commits.id"],
            name=op.f("fk_story_commit_parents_parent_id_story_commits"),
            **_HISTORY,
        ),
        sa.PrimaryKeyConstraint("commit_id", "position", name=op.f("pk_story_commit_parents")),
    )
    op.create_index(
        op.f("ix_story_commit_parents_parent_id"),
        "story_commit_parents",
        ["parent_id"],
        unique=False,
    )
    op.create_table(
        "story_branches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("head_id", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["story_id"],
            ["stories.id"],
            name=op.f("fk_story_branches_story_id_stories"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["head_id"],
            ["story_commits.id"],
            name=op.f("fk_story_branches_head_id_story_commits"),
            **_HISTORY,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_story_branches")),
        sa.UniqueConstraint("story_id", "name", name=op.f("uq_story_branches_story_id_name")),
    )
    op.create_index(op.f("ix_story_branches_head_id"), "story_branches", ["head_id"], unique=False)
    op.create_table(
        "story_branch_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "create",
                "commit",
                "merge",
                "fast_forward",
                "import",
                name="branch_move_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("from_commit_id", sa.Integer(), nullable=True),
        sa.Column("to_commit_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "moved_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["branch_id"],
            ["story_branches.id"],
            name=op.f("fk_story_branch_moves_branch_id_story_branches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["from_commit_id"],
            ["story_commits.id"],
            name=op.f("fk_story_branch_moves_from_commit_id_story_commits"),
            **_HISTORY,
        ),
        sa.ForeignKeyConstraint(
            ["to_commit_id"],
            ["story_commits.id"],
            name=op.f("fk_story_branch_moves_to_commit_id_story_commits"),
            **_HISTORY,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_story_branch_moves")),
    )
    op.create_index(
        op.f("ix_story_branch_moves_branch_id"), "story_branch_moves", ["branch_id"], unique=False
    )
    op.create_table(
        "story_adaptations",
        sa.Column("episode_id", sa.Integer(), nullable=False),
        sa.Column("branch", sa.String(length=100), nullable=False),
        sa.Column("scenes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["episode_id"],
            ["episodes.id"],
            name=op.f("fk_story_adaptations_episode_id_episodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("episode_id", name=op.f("pk_story_adaptations")),
    )
    op.add_column("episodes", sa.Column("story_commit_id", sa.Integer(), nullable=True))
    op.create_index(
        op.f("ix_episodes_story_commit_id"), "episodes", ["story_commit_id"], unique=False
    )
    op.create_foreign_key(
        op.f("fk_episodes_story_commit_id_story_commits"),
        "episodes",
        "story_commits",
        ["story_commit_id"],
        ["id"],
        ondelete="SET NULL",
    )


def downgrade() -> None:
    # Episodes stay; only their link to a story version goes with the story tables.
    op.drop_constraint(
        op.f("fk_episodes_story_commit_id_story_commits"), "episodes", type_="foreignkey"
    )
    op.drop_index(op.f("ix_episodes_story_commit_id"), table_name="episodes")
    op.drop_column("episodes", "story_commit_id")
    op.drop_table("story_adaptations")
    op.drop_index(op.f("ix_story_branch_moves_branch_id"), table_name="story_branch_moves")
    op.drop_table("story_branch_moves")
    op.drop_index(op.f("ix_story_branches_head_id"), table_name="story_branches")
    op.drop_table("story_branches")
    op.drop_index(op.f("ix_story_commit_parents_parent_id"), table_name="story_commit_parents")
    op.drop_table("story_commit_parents")
    op.drop_index(op.f("ix_story_commits_snapshot_id"), table_name="story_commits")
    op.drop_table("story_commits")
    op.drop_table("story_snapshots")
    op.drop_table("stories")
