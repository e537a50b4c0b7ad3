"""Scores per job and metric, and phase-gate decisions."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, ForeignKey, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.models.base import Base, str_enum
from db.vocabulary import GateDecision, GateScope, Phase, Verdict

if TYPE_CHECKING:
    from db.models.jobs import Job


class QualityScore(Base):
    __tablename__ = "quality_scores"
    __table_args__ = (
        # subject is '' (not NULL) for metrics about the whole output, so the key stays unique.
        UniqueConstraint("job_id", "metric", "subject"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    artifact_id: Mapped[int | None] = mapped_column(ForeignKey("artifacts.id", ondelete="SET NULL"))
    metric: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(100), default="")
    value: Mapped[float | None] = mapped_column(Float)  # None: could not be measured
    threshold: Mapped[float | None] = mapped_column(Float)
    comparator: Mapped[str] = mapped_column(String(2), default=">=")
    verdict: Mapped[Verdict] = mapped_column(str_enum(Verdict, "score_verdict"))
    model: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    job: Mapped[Job] = relationship(back_populates="scores")

    @property
    def passed(self) -> bool | None:
        return None if self.verdict is Verdict.COULD_NOT_JUDGE else self.verdict is Verdict.PASSED


class PhaseGate(Base):
    """One decision: did enough of a phase's items pass for the next phase to start?"""

    __tablename__ = "phase_gates"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    scope: Mapped[GateScope] = mapped_column(str_enum(GateScope, "gate_scope"))
    episode_id: Mapped[int | None] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"))
    character_id: Mapped[int | None] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE")
    )
    phase: Mapped[Phase] = mapped_column(str_enum(Phase, "gate_phase"))
    items_total: Mapped[int]
    items_passed: Mapped[int]
    pass_rate: Mapped[float] = mapped_column(Float)
    required_rate: Mapped[float] = mapped_column(Float)
    decision: Mapped[GateDecision] = mapped_column(str_enum(GateDecision, "gate_decision"))
    explanation: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prefect_flow_run_id: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(server_default=func.now())
