"""Characters: attributes, variations, reference images and their face embeddings."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, Float, ForeignKey, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import ARRAY, REAL
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from db.models.base import Base, Timestamped, str_enum
from db.normalize import normalize_attribute_key, normalize_attribute_value
from db.vocabulary import VariationKind

if TYPE_CHECKING:
    from db.models.project import Project
    from db.models.story import StoryCommit


class Character(Timestamped, Base):
    __tablename__ = "characters"
    __table_args__ = (UniqueConstraint("project_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    base_prompt: Mapped[str] = mapped_column(Text, default="")
    negative_prompt: Mapped[str] = mapped_column(Text, default="")
    # Set by hand in the production file; wins over the calibrated one (FaceCalibration).
    face_threshold: Mapped[float | None] = mapped_column(Float, default=None)

    project: Mapped[Project] = relationship(back_populates="characters")
    attributes: Mapped[list[CharacterAttribute]] = relationship(
        back_populates="character", order_by="CharacterAttribute.key", cascade="all, delete-orphan"
    )
    variations: Mapped[list[CharacterVariation]] = relationship(
        back_populates="character",
        order_by="(CharacterVariation.kind, CharacterVariation.name)",
        cascade="all, delete-orphan",
    )
    references: Mapped[list[CharacterReference]] = relationship(
        back_populates="character", order_by="CharacterReference.id", cascade="all, delete-orphan"
    )
    face_calibrations: Mapped[list[FaceCalibration]] = relationship(
        back_populates="character",
        order_by="FaceCalibration.model_name",
        cascade="all, delete-orphan",
    )
    looks: Mapped[list[CharacterLook]] = relationship(
        back_populates="character",
        order_by="(CharacterLook.from_episode.nulls_last(), CharacterLook.name)",
        cascade="all, delete-orphan",
    )

    def attribute_map(self) -> dict[str, str]:
        return {a.key: a.value for a in self.attributes}

    def look_named(self, name: str | None) -> CharacterLook | None:
        """The look a cut names (``base``, or a name no look has any more: None, the base
        look). Which look is in force for an episode is db/looks.py's question."""
        return next((look for look in self.looks if look.name == name), None)


class CharacterLook(Base):
    """How a character looks from an episode on (a time skip, a haircut, a scar), from a point
    of the story the episodes adapt, or on demand (a flashback, chosen by a cut): a prompt
    delta and attribute changes on top of the base look, and its own references. Its anchor
    references (the canonical face, references with no look) stay shared unless
    ``replaces_references``."""

    __tablename__ = "character_looks"
    __table_args__ = (
        UniqueConstraint("character_id", "name"),
        # One place it takes effect from (none: only where a cut names it).
        CheckConstraint(
            "num_nonnulls(from_episode, from_story_commit_id, from_story_scene) <= 1",
            name="one_start",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    # None (and no story point): never in force by itself, only where a cut names it.
    from_episode: Mapped[int | None] = mapped_column(default=None)
    # Or in force for the episodes that adapt a story version holding this commit...
    from_story_commit_id: Mapped[int | None] = mapped_column(
        ForeignKey("story_commits.id", ondelete="SET NULL"), default=None, index=True
    )
    # ...or that adapt this story scene (or chapter), or one after it in the story's order.
    from_story_scene: Mapped[str | None] = mapped_column(String(100), default=None)
    prompt_delta: Mapped[str] = mapped_column(Text, default="")
    # Attribute key -> value, replacing (or adding to) the character's attributes.
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    replaces_references: Mapped[bool] = mapped_column(default=False)
    # Dropped from the production file but kept for the renders that used it (--prune removes).
    retired: Mapped[bool] = mapped_column(default=False, server_default="false")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    character: Mapped[Character] = relationship(back_populates="looks")
    from_story_commit: Mapped[StoryCommit | None] = relationship()
    references: Mapped[list[CharacterReference]] = relationship(
        back_populates="look", order_by="CharacterReference.id"
    )

    # Normalized on every write, like CharacterAttribute.
    @validates("attributes")
    def _normalize_attributes(self, _: str, attributes: dict[str, Any]) -> dict[str, str]:
        return {
            normalize_attribute_key(str(k)): normalize_attribute_value(str(v))
            for k, v in attributes.items()
        }

    def attribute_map(self) -> dict[str, str]:
        """The character's attributes with this look's changes applied."""
        return {**self.character.attribute_map(), **self.attributes}


class CharacterAttribute(Base):
    __tablename__ = "character_attributes"
    __table_args__ = (UniqueConstraint("character_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))
    value: Mapped[str] = mapped_column(String(500))

    character: Mapped[Character] = relationship(back_populates="attributes")

    # Normalized on every write, whichever code path writes it.
    @validates("key")
    def _normalize_key(self, _: str, key: str) -> str:
        return normalize_attribute_key(key)

    @validates("value")
    def _normalize_value(self, _: str, value: str) -> str:
        return normalize_attribute_value(value)


class CharacterVariation(Base):
    """An outfit, expression or pose: a prompt delta on top of the character's base prompt."""

    __tablename__ = "character_variations"
    __table_args__ = (UniqueConstraint("character_id", "kind", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    kind: Mapped[VariationKind] = mapped_column(str_enum(VariationKind, "variation_kind"))
    name: Mapped[str] = mapped_column(String(100))
    prompt_delta: Mapped[str] = mapped_column(Text, default="")
    reference_image: Mapped[str | None] = mapped_column(Text, default=None)
    # "file" (the production file owns it: a re-import removes it when the file drops it) or
    # "api" (added through the domain API: a re-import keeps it and reports it).
    source: Mapped[str] = mapped_column(String(32), default="file", server_default="file")

    character: Mapped[Character] = relationship(back_populates="variations")


class CharacterReference(Base):
    """An approved image of the character; the face embeddings are computed from these."""

    __tablename__ = "character_references"
    __table_args__ = (UniqueConstraint("character_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    view: Mapped[str] = mapped_column(String(100), default="")
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    # Where it came from: "imported" from the production file, or "sheet" (an approved render).
    source: Mapped[str] = mapped_column(String(32), default="imported")
    source_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), default=None
    )
    # None: an anchor reference, shared by every look that does not replace them.
    look_id: Mapped[int | None] = mapped_column(
        ForeignKey("character_looks.id", ondelete="CASCADE"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    character: Mapped[Character] = relationship(back_populates="references")
    look: Mapped[CharacterLook | None] = relationship(back_populates="references")
    embeddings: Mapped[list[FaceEmbedding]] = relationship(
        back_populates="reference", cascade="all, delete-orphan"
    )

    @property
    def file(self) -> str:
        """The image to open: ``path`` resolved against the production's folder."""
        return self.character.project.file_path(self.path)


class FaceEmbedding(Base):
    __tablename__ = "face_embeddings"
    __table_args__ = (UniqueConstraint("reference_id", "model_name", "face_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reference_id: Mapped[int] = mapped_column(
        ForeignKey("character_references.id", ondelete="CASCADE")
    )
    model_name: Mapped[str] = mapped_column(String(200))
    face_index: Mapped[int] = mapped_column(default=0)
    # Plain float4[] rather than pgvector: the Debian server the studio may point at has no
    # pgvector, and a character has tens of references, not millions.
    vector: Mapped[list[float]] = mapped_column(ARRAY(REAL))
    bbox: Mapped[list[Any] | None] = mapped_column(default=None)
    det_score: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    reference: Mapped[CharacterReference] = relationship(back_populates="embeddings")


class FaceCalibration(Base):
    """A character's face threshold for one face model, from its genuine and impostor pairs
    (tasks/scoring/calibration.py); ``threshold`` None: too few references, the default holds."""

    __tablename__ = "face_calibrations"
    __table_args__ = (
        UniqueConstraint(
            "character_id",
            "look_id",
            "model_name",
            postgresql_nulls_not_distinct=True,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    # None: the base look's references; a look's threshold is calibrated on its own set.
    look_id: Mapped[int | None] = mapped_column(
        ForeignKey("character_looks.id", ondelete="CASCADE"), default=None
    )
    model_name: Mapped[str] = mapped_column(String(200))
    threshold: Mapped[float | None] = mapped_column(Float, default=None)
    references: Mapped[int] = mapped_column(default=0)
    impostors: Mapped[int] = mapped_column(default=0)
    method: Mapped[str] = mapped_column(String(200), default="")
    explanation: Mapped[str] = mapped_column(Text, default="")
    calibrated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    character: Mapped[Character] = relationship(back_populates="face_calibrations")
    look: Mapped[CharacterLook | None] = relationship()
