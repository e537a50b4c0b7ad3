"""The episode as one film: a reel assembled from what is stored, and the recipe behind it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.models.base import Base
from db.models.production import Episode


class Reel(Base):
    """An MP4 of an episode in cut order and its contact sheet.

    ``cuts`` is the recipe: per cut, what was shown (animation, keyframe, attempt, slate), the
    job and artifact behind it (with the artifact's sha256) and the frames it took. The same
    recipe at the same fps and size encodes to the same bytes, so a reel is found again by its
    content instead of being stored twice.
    """

    __tablename__ = "reels"
    __table_args__ = (UniqueConstraint("episode_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"))
    uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mime: Mapped[str] = mapped_column(String(100), default="video/mp4")
    codec: Mapped[str] = mapped_column(String(32), default="h264")
    fps: Mapped[int]
    frames: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    duration_seconds: Mapped[float] = mapped_column(Float)
    only_approved: Mapped[bool] = mapped_column(default=False)
    cuts: Mapped[list[Any]] = mapped_column(default=list)
    contact_sheet_uri: Mapped[str | None] = mapped_column(Text)
    contact_sheet_sha256: Mapped[str | None] = mapped_column(String(64))
    prefect_flow_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    episode: Mapped[Episode] = relationship()
