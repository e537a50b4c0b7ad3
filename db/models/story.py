"""Storylines under version control: stories, commits of content-addressed snapshots, branches.

A commit's ``sha`` is the SHA-256 of its canonical content (snapshot hash, parent shas, author,
message, time), so an export imported elsewhere recreates the same ids. Commits and snapshots
are never updated; only branch heads move, and every move is recorded.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.models.base import Base, Timestamped, str_enum
from db.vocabulary import BranchMoveKind

if TYPE_CHECKING:
    from db.models.production import Episode
    from db.models.project import Project


def _history_fk(target: str) -> ForeignKey:
    """No ON DELETE: history is never deleted piecemeal. Checked at commit time, so deleting a
    whole story (which cascades to all of these tables at once) is not refused mid-way."""
    return ForeignKey(target, deferrable=True, initially="DEFERRED")


class Story(Timestamped, Base):
    __tablename__ = "stories"
    __table_args__ = (UniqueConstraint("project_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    # The branch `log`, `checkout` and episodes follow when no branch is named.
    default_branch: Mapped[str] = mapped_column(String(100), default="main")

    project: Mapped[Project] = relationship()
    branches: Mapped[list[StoryBranch]] = relationship(
        back_populates="story",
        order_by="StoryBranch.name",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def label(self) -> str:
        return f"{self.project.slug}/{self.slug}"


class StorySnapshot(Base):
    """One story tree, stored once per story however many commits share it."""

    __tablename__ = "story_snapshots"
    __table_args__ = (UniqueConstraint("story_id", "sha"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"))
    sha: Mapped[str] = mapped_column(String(64))
    tree: Mapped[dict[str, Any]]


class StoryCommit(Base):
    __tablename__ = "story_commits"
    __table_args__ = (UniqueConstraint("story_id", "sha"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"))
    sha: Mapped[str] = mapped_column(String(64))
    snapshot_id: Mapped[int] = mapped_column(_history_fk("story_snapshots.id"), index=True)
    author: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text, default="")
    committed_at: Mapped[datetime]
    stored_at: Mapped[datetime] = mapped_column(server_default=func.now())

    story: Mapped[Story] = relationship()
    snapshot: Mapped[StorySnapshot] = relationship()
    parent_links: Mapped[list[StoryCommitParent]] = relationship(
        foreign_keys="StoryCommitParent.commit_id",
        order_by="StoryCommitParent.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def parents(self) -> list[StoryCommit]:
        return [link.parent for link in self.parent_links]

    @property
    def short(self) -> str:
        return self.sha[:10]


class StoryCommitParent(Base):
    """Parents in order: the first is the line the commit continued, the second what it merged."""

    __tablename__ = "story_commit_parents"

    commit_id: Mapped[int] = mapped_column(
        ForeignKey("story_commits.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(_history_fk("story_commits.id"), index=True)

    parent: Mapped[StoryCommit] = relationship(foreign_keys=[parent_id])


class StoryBranch(Timestamped, Base):
    __tablename__ = "story_branches"
    __table_args__ = (UniqueConstraint("story_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    head_id: Mapped[int] = mapped_column(_history_fk("story_commits.id"), index=True)

    story: Mapped[Story] = relationship(back_populates="branches")
    head: Mapped[StoryCommit] = relationship()
    moves: Mapped[list[StoryBranchMove]] = relationship(
        back_populates="branch",
        order_by="StoryBranchMove.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class StoryBranchMove(Base):
    """Every time a branch head moved, how and by whom: a fast-forward shows as one."""

    __tablename__ = "story_branch_moves"

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(
        ForeignKey("story_branches.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[BranchMoveKind] = mapped_column(str_enum(BranchMoveKind, "branch_move_kind"))
    from_commit_id: Mapped[int | None] = mapped_column(_history_fk("story_commits.id"))
    to_commit_id: Mapped[int] = mapped_column(_history_fk("story_commits.id"))
    author: Mapped[str] = mapped_column(String(200), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    moved_at: Mapped[datetime] = mapped_column(server_default=func.now())

    branch: Mapped[StoryBranch] = relationship(back_populates="moves")
    from_commit: Mapped[StoryCommit | None] = relationship(foreign_keys=[from_commit_id])
    to_commit: Mapped[StoryCommit] = relationship(foreign_keys=[to_commit_id])


class StoryAdaptation(Base):
    """What an episode adapts besides the commit (``episodes.story_commit_id``).

    ``branch`` is the line whose head it is compared with (empty: the story's default branch);
    ``scenes`` the scene or chapter slugs it adapts (empty: the whole story).
    """

    __tablename__ = "story_adaptations"

    episode_id: Mapped[int] = mapped_column(
        ForeignKey("episodes.id", ondelete="CASCADE"), primary_key=True
    )
    branch: Mapped[str] = mapped_column(String(100), default="")
    scenes: Mapped[list[Any]] = mapped_column(default=list)

    episode: Mapped[Episode] = relationship()
