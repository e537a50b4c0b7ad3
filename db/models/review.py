"""A person's decision on a cut's output: where the automatic gates could not decide."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.models.base import Base, str_enum
from db.models.jobs import Job
from db.vocabulary import JobStatus, Phase, ReviewOutcome, Verdict


class ReviewDecision(Base):
    """Who decided what, when and why, and the automatic scores the decision overruled."""

    __tablename__ = "review_decisions"
    __table_args__ = (Index("ix_review_decisions_cut_phase", "cut_id", "phase"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    cut_id: Mapped[int | None] = mapped_column(ForeignKey("cuts.id", ondelete="CASCADE"))
    phase: Mapped[Phase] = mapped_column(str_enum(Phase, "review_phase"))
    outcome: Mapped[ReviewOutcome] = mapped_column(str_enum(ReviewOutcome, "review_outcome"))
    reviewer: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(32), default="api")  # page, api, cli, prefect
    # The automatic judgement this decision replaced: status, verdict and every score line.
    previous_status: Mapped[JobStatus] = mapped_column(
        str_enum(JobStatus, "review_previous_status")
    )
    previous_verdict: Mapped[Verdict | None] = mapped_column(
        str_enum(Verdict, "review_previous_verdict")
    )
    overruled: Mapped[list[Any]] = mapped_column(default=list)
    # The cut's highest attempt when decided: a rejected cut renders again from the next one.
    last_attempt: Mapped[int]
    decided_at: Mapped[datetime] = mapped_column(server_default=func.now())

    job: Mapped[Job] = relationship()
