"""Projects and their versioned story bibles."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.models.base import Base, Timestamped

if TYPE_CHECKING:
    from db.models.character import Character
    from db.models.production import Episode


class Project(Timestamped, Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # Per-project settings that are not thresholds: default template, renderer, notification
    # block names, ... Kept as data so a new setting needs no migration.
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The folder of the production file last imported. Image paths inside it are stored
    # relative to it, so a production moved or copied elsewhere is still the same production.
    root: Mapped[str | None] = mapped_column(Text, default=None)

    story_bibles: Mapped[list[StoryBible]] = relationship(
        back_populates="project", order_by="StoryBible.version", cascade="all, delete-orphan"
    )
    characters: Mapped[list[Character]] = relationship(
        back_populates="project", order_by="Character.slug", cascade="all, delete-orphan"
    )
    episodes: Mapped[list[Episode]] = relationship(
        back_populates="project", order_by="Episode.number", cascade="all, delete-orphan"
    )

    @property
    def story_bible(self) -> StoryBible | None:
        """The current (latest) version."""
        return self.story_bibles[-1] if self.story_bibles else None

    def file_path(self, stored: str) -> str:
        """A stored image path as a path to open: relative ones are inside ``root``."""
        if stored.startswith("/") or not self.root:
            return stored
        return f"{self.root.rstrip('/')}/{stored}"


class StoryBible(Base):
    """One immutable version of a project's art direction; renders record the version used."""

    __tablename__ = "story_bibles"
    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    version: Mapped[int]
    style_prompt: Mapped[str] = mapped_column(Text, default="")
    negative_prompt: Mapped[str] = mapped_column(Text, default="")
    palette: Mapped[list[Any]] = mapped_column(default=list)
    style_references: Mapped[list[Any]] = mapped_column(default=list)
    rules: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    project: Mapped[Project] = relationship(back_populates="story_bibles")

    def content(self) -> dict[str, Any]:
        """What makes two versions the same: everything but identity and time."""
        return {
            "style_prompt": self.style_prompt,
            "negative_prompt": self.negative_prompt,
            "palette": list(self.palette),
            "style_references": list(self.style_references),
            "rules": list(self.rules),
        }


class Announcement(Base):
    """A notice sent to a project's notification routes, kept so it is sent once: a rerun
    that reaches the same decision (the same gate result, the same flagged attempt) is quiet."""

    __tablename__ = "announcements"
    __table_args__ = (UniqueConstraint("project_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))  # sha256 of event, subject and explanation
    event: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(Text)
    announced_at: Mapped[datetime] = mapped_column(server_default=func.now())
