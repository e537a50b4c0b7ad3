"""Episodes -> scenes -> cuts, and who appears in each (casting)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.models.base import Base, Timestamped

if TYPE_CHECKING:
    from db.models.character import Character
    from db.models.project import Project
    from db.models.story import StoryCommit


class Episode(Timestamped, Base):
    __tablename__ = "episodes"
    __table_args__ = (UniqueConstraint("project_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    number: Mapped[int]
    title: Mapped[str] = mapped_column(String(300))
    synopsis: Mapped[str] = mapped_column(Text, default="")
    # The story version this episode adapts (see db/story.py: adaptation_status).
    story_commit_id: Mapped[int | None] = mapped_column(
        ForeignKey("story_commits.id", ondelete="SET NULL"), default=None, index=True
    )

    project: Mapped[Project] = relationship(back_populates="episodes")
    story_commit: Mapped[StoryCommit | None] = relationship()
    scenes: Mapped[list[Scene]] = relationship(
        back_populates="episode", order_by="Scene.number", cascade="all, delete-orphan"
    )


class Scene(Timestamped, Base):
    __tablename__ = "scenes"
    __table_args__ = (UniqueConstraint("episode_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"))
    number: Mapped[int]
    title: Mapped[str] = mapped_column(String(300), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(String(300), default="")
    time_of_day: Mapped[str] = mapped_column(String(50), default="")

    episode: Mapped[Episode] = relationship(back_populates="scenes")
    cuts: Mapped[list[Cut]] = relationship(
        back_populates="scene", order_by="Cut.number", cascade="all, delete-orphan"
    )
    casting: Mapped[list[SceneCasting]] = relationship(
        back_populates="scene", cascade="all, delete-orphan"
    )


class Cut(Timestamped, Base):
    """One shot: what the camera sees, for how long, rendered with which template."""

    __tablename__ = "cuts"
    __table_args__ = (
        UniqueConstraint("scene_id", "number"),
        CheckConstraint("frames > 0", name="frames_positive"),
        CheckConstraint("fps > 0", name="fps_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    scene_id: Mapped[int] = mapped_column(ForeignKey("scenes.id", ondelete="CASCADE"))
    number: Mapped[int]
    description: Mapped[str] = mapped_column(Text, default="")
    dialogue: Mapped[str] = mapped_column(Text, default="")
    # Shot size, angle, movement, lens: free keys so a studio's own camera vocabulary fits.
    camera: Mapped[dict[str, Any]] = mapped_column(default=dict)
    frames: Mapped[int] = mapped_column(default=16)
    fps: Mapped[int] = mapped_column(default=8)
    template: Mapped[str | None] = mapped_column(String(100), default=None)
    # Per-cut template parameter overrides (steps, cfg, seed, size, ...).
    overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)

    scene: Mapped[Scene] = relationship(back_populates="cuts")
    casting: Mapped[list[CutCasting]] = relationship(
        back_populates="cut", cascade="all, delete-orphan"
    )

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.fps


class SceneCasting(Base):
    __tablename__ = "scene_casting"

    scene_id: Mapped[int] = mapped_column(
        ForeignKey("scenes.id", ondelete="CASCADE"), primary_key=True
    )
    character_id: Mapped[int] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(100), default="")

    scene: Mapped[Scene] = relationship(back_populates="casting")
    character: Mapped[Character] = relationship()


class CutCasting(Base):
    """A character in a cut, with the variations (outfit, expression, pose) chosen for it."""

    __tablename__ = "cut_casting"

    cut_id: Mapped[int] = mapped_column(ForeignKey("cuts.id", ondelete="CASCADE"), primary_key=True)
    character_id: Mapped[int] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), primary_key=True
    )
    # {"outfit": "school-uniform", "expression": "smiling"}: names of CharacterVariation rows.
    variations: Mapped[dict[str, Any]] = mapped_column(default=dict)
    position: Mapped[str] = mapped_column(String(50), default="")
    # The look the cut names (a flashback: "base" or a look's name) instead of the one in
    # force for its episode; None: the one in force.
    look: Mapped[str | None] = mapped_column(String(100), default=None)

    cut: Mapped[Cut] = relationship(back_populates="casting")
    character: Mapped[Character] = relationship()
