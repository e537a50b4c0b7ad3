"""character looks: how a character looks from an episode on, and which look a render used

Revision ID: 0009_character_looks
Revises: 0008_production_origin
Create Date: 2026-12-01 14:10:00

``character_looks`` holds a character's later looks (the base look is the character's own
fields); ``character_references.look_id`` ties a reference to a look (none: an anchor, shared);
``cut_casting.look`` is a cut's override (a flashback); ``job_looks`` records the looks a
render used; ``face_calibrations`` are per look.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_character_looks"
down_revision: str | None = "0008_production_origin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "character_looks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("character_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("from_episode", sa.Integer(), nullable=True),
        sa.Column("prompt_delta", sa.Text(), nullable=False),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("replaces_references", sa.Boolean(), nullable=False),
        sa.Column("retired", sa.Boolean(), nullable=False, server_default="false"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["character_id"],
            ["characters.id"],
            name="fk_character_looks_character_id_characters",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_character_looks"),
        sa.UniqueConstraint("character_id", "name", name="uq_character_looks_character_id_name"),
    )
    op.add_column("character_references", sa.Column("look_id", sa.Integer(), nullable=True))
    op.create_foreign_key(
        "fk_character_references_look_id_character_looks",
        "character_references",
        "character_looks",
        ["look_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.add_column("cut_casting", sa.Column("look", sa.String(length=100), nullable=True))
    op.create_table(
        "job_looks",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("look_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_looks_job_id_jobs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["look_id"],
            ["character_looks.id"],
            name="fk_job_looks_look_id_character_looks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "look_id", name="pk_job_looks"),
    )
    op.add_column("face_calibrations", sa.Column("look_id", sa.Integer(), nullable=True))
    op.create_foreign_key(
        "fk_face_calibrations_look_id_character_looks",
        "face_calibrations",
        "character_looks",
        ["look_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.drop_constraint(
        "uq_face_calibrations_character_id_model_name", "face_calibrations", type_="unique"
    )
    op.create_unique_constraint(
        "uq_face_calibrations_character_id_look_id_model_name",
        "face_calibrations",
        ["character_id", "look_id", "model_name"],
        postgresql_nulls_not_distinct=True,
    )


def downgrade() -> None:
    # A look's calibrations and references go with it; the base look's stay.
    op.execute("DELETE FROM face_calibrations WHERE look_id IS NOT NULL")
    op.execute("DELETE FROM character_references WHERE look_id IS NOT NULL")
    op.drop_constraint(
        "uq_face_calibrations_character_id_look_id_model_name", "face_calibrations", type_="unique"
    )
    op.create_unique_constraint(
        "uq_face_calibrations_character_id_model_name",
        "face_calibrations",
        ["character_id", "model_name"],
    )
    op.drop_constraint(
        "fk_face_calibrations_look_id_character_looks", "face_calibrations", type_="foreignkey"
    )
    op.drop_column("face_calibrations", "look_id")
    op.drop_table("job_looks")
    op.drop_column("cut_casting", "look")
    op.drop_constraint(
        "fk_character_references_look_id_character_looks",
        "character_references",
        type_="foreignkey",
    )
    op.drop_column("character_references", "look_id")
    op.drop_table("character_looks")
