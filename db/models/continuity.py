"""Continuity between consecutive cuts of a scene: does the next cut pick up where this ended?"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base, str_enum
from db.vocabulary import Verdict


class ContinuityScore(Base):
    """One measurement between the last frame of ``previous_cut`` and the first of ``cut``:
    identity of a shared character (subject = its slug), style or colour (subject '')."""

    __tablename__ = "continuity_scores"
    __table_args__ = (UniqueConstraint("cut_id", "previous_cut_id", "metric", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"))
    cut_id: Mapped[int] = mapped_column(ForeignKey("cuts.id", ondelete="CASCADE"))
    previous_cut_id: Mapped[int] = mapped_column(ForeignKey("cuts.id", ondelete="CASCADE"))
    # The footage compared: the jobs whose outputs the reel shows for the two cuts.
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    previous_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL")
    )
    metric: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(100), default="")
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    comparator: Mapped[str] = mapped_column(String(2), default=">=")
    verdict: Mapped[Verdict] = mapped_column(str_enum(Verdict, "continuity_verdict"))
    model: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
